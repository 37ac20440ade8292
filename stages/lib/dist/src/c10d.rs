//! Safe wrappers over the C++ shim: every call returns c10d's own error text on failure,
//! prefixed with the rank, and blocks until its collective has finished on this rank.

use std::ffi::{c_char, c_int, CStr, CString};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::{Device, Tensor};
use torch_sys::C_tensor;

#[repr(C)]
struct RawStore {
    _private: [u8; 0],
}

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn spice_c10d_free_error(message: *mut c_char);
    fn spice_c10d_store_new(
        host: *const c_char,
        port: u16,
        world: c_int,
        is_server: c_int,
        timeout_ms: i64,
        prefix: *const c_char,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn spice_c10d_store_free(store: *mut RawStore);
    fn spice_c10d_nccl_available() -> c_int;
    fn spice_c10d_group_new(
        store: *mut RawStore,
        backend: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn spice_c10d_group_free(group: *mut RawGroup);
    fn spice_c10d_allreduce(group: *mut RawGroup, tensor: *mut C_tensor, op: c_int) -> *mut c_char;
    fn spice_c10d_broadcast(
        group: *mut RawGroup,
        tensor: *mut C_tensor,
        root: c_int,
    ) -> *mut c_char;
    fn spice_c10d_all_gather(
        group: *mut RawGroup,
        output: *mut C_tensor,
        input: *mut C_tensor,
    ) -> *mut c_char;
    fn spice_c10d_reduce_scatter(
        group: *mut RawGroup,
        output: *mut C_tensor,
        input: *mut C_tensor,
        op: c_int,
    ) -> *mut c_char;
    fn spice_c10d_barrier(group: *mut RawGroup) -> *mut c_char;
}

/// Turn the shim's error string (NULL on success) into a Result.
fn check(message: *mut c_char, what: impl FnOnce() -> String) -> Result<()> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated string from malloc, ours to free.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { spice_c10d_free_error(message) };
    bail!("{}: {}", what(), text.trim())
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

/// The reductions c10d offers that the update uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Max = 1,
    Min = 2,
}

/// c10d's TCPStore: rank 0 serves it, every rank (rank 0 included) connects to it.
pub struct Store {
    raw: *mut RawStore,
}

// SAFETY: c10d's stores are shared between threads by c10d itself (its process groups use one
// from their worker threads); ours is only moved, never aliased across threads without it.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Store {
    /// Connect to (or, with `is_server`, serve) the store at `host:port` for `world`
    /// processes; waits up to `timeout` for all of them. `prefix` separates the keys of groups
    /// that share one server.
    pub fn tcp(
        host: &str,
        port: u16,
        world: usize,
        is_server: bool,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Self> {
        let c_host = CString::new(host).context("store host")?;
        let c_prefix = CString::new(prefix).context("store prefix")?;
        let mut raw = std::ptr::null_mut();
        let world = c_int::try_from(world).context("world size")?;
        let err = unsafe {
            spice_c10d_store_new(
                c_host.as_ptr(),
                port,
                world,
                c_int::from(is_server),
                millis(timeout),
                c_prefix.as_ptr(),
                &mut raw,
            )
        };
        check(err, || format!("c10d TCPStore at {host}:{port}"))?;
        Ok(Self { raw })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        unsafe { spice_c10d_store_free(self.raw) }
    }
}

/// Which c10d backend a group runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo, over TCP: CPU tensors.
    Gloo = 0,
    /// NCCL: CUDA tensors, one device per rank.
    Nccl = 1,
}

impl Backend {
    /// NCCL for CUDA tensors, Gloo otherwise (torch.distributed's default choice).
    pub fn for_device(device: Device) -> Self {
        match device {
            Device::Cuda(_) => Self::Nccl,
            _ => Self::Gloo,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl => "nccl",
        }
    }
}

/// Whether this build compiled c10d's NCCL process group in (a CUDA libtorch with NCCL's
/// headers beside it).
pub fn nccl_available() -> bool {
    unsafe { spice_c10d_nccl_available() != 0 }
}

/// A c10d process group of `world` ranks. Every collective blocks until done on this rank and
/// fails (rather than hangs) after the group's timeout.
pub struct ProcessGroup {
    raw: *mut RawGroup,
    rank: usize,
    world: usize,
    backend: Backend,
    // The group keeps a reference to the store; this keeps ours alive as long as the group.
    _store: Store,
}

// SAFETY: c10d process groups are thread-safe (collectives are queued to their own threads).
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl ProcessGroup {
    /// Join the group as `rank` of `world` through `store`.
    pub fn new(
        backend: Backend,
        store: Store,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Self> {
        if rank >= world {
            bail!("rank {rank} is not below the world size {world}");
        }
        let mut raw = std::ptr::null_mut();
        let (r, w) = (c_int::try_from(rank)?, c_int::try_from(world)?);
        let err = unsafe {
            spice_c10d_group_new(store.raw, backend as c_int, r, w, millis(timeout), &mut raw)
        };
        check(err, || {
            format!("rank {rank} of {world}: creating the {} process group", backend.name())
        })?;
        Ok(Self { raw, rank, world, backend, _store: store })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn context(&self, what: &str) -> impl FnOnce() -> String + '_ {
        let what = what.to_owned();
        move || format!("rank {} of {}: {} {what}", self.rank, self.world, self.backend.name())
    }

    /// Reduce `tensor` element-wise over all ranks, in place; every rank gets the result.
    /// It must be contiguous and of one shape and dtype on every rank (c10d checks).
    pub fn all_reduce(&self, tensor: &Tensor, op: ReduceOp) -> Result<()> {
        let err = unsafe { spice_c10d_allreduce(self.raw, tensor.as_ptr() as *mut _, op as c_int) };
        check(err, self.context("all_reduce"))
    }

    /// Overwrite `tensor` on every rank with rank `root`'s.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()> {
        let root = c_int::try_from(root)?;
        let err = unsafe { spice_c10d_broadcast(self.raw, tensor.as_ptr() as *mut _, root) };
        check(err, self.context("broadcast"))
    }

    /// Fill `output` (world × `input`'s elements) with every rank's `input`, rank r's at slice
    /// r.
    pub fn all_gather(&self, output: &Tensor, input: &Tensor) -> Result<()> {
        let err = unsafe {
            spice_c10d_all_gather(self.raw, output.as_ptr() as *mut _, input.as_ptr() as *mut _)
        };
        check(err, self.context("all_gather"))
    }

    /// Reduce `input` (world × `output`'s elements) over all ranks and leave slice r of the
    /// result in rank r's `output`.
    pub fn reduce_scatter(&self, output: &Tensor, input: &Tensor, op: ReduceOp) -> Result<()> {
        let err = unsafe {
            spice_c10d_reduce_scatter(
                self.raw,
                output.as_ptr() as *mut _,
                input.as_ptr() as *mut _,
                op as c_int,
            )
        };
        check(err, self.context("reduce_scatter"))
    }

    /// Wait until every rank reaches this point.
    pub fn barrier(&self) -> Result<()> {
        let err = unsafe { spice_c10d_barrier(self.raw) };
        check(err, self.context("barrier"))
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup({} rank {} of {})", self.backend.name(), self.rank, self.world)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { spice_c10d_group_free(self.raw) }
    }
}
