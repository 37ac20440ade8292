//! c10d's Gloo collectives through the shim: two ranks on localhost, each in its own thread
//! with its own store client and process group (exactly what two processes would hold).

use std::time::Duration;

use spice_dist::c10d::{Backend, ProcessGroup, ReduceOp, Store};
use tch::{Device, Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Run `body` on `world` ranks of one Gloo group and return each rank's result.
fn on_ranks<T: Send + 'static>(
    world: usize,
    timeout: Duration,
    body: impl Fn(&ProcessGroup) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let body = body.clone();
            std::thread::spawn(move || {
                let store =
                    Store::tcp("127.0.0.1", port, world, rank == 0, timeout, "test").unwrap();
                let group = ProcessGroup::new(Backend::Gloo, store, rank, world, timeout).unwrap();
                body(&group)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

#[test]
fn all_reduce_broadcast_gather_and_scatter_over_gloo() {
    let out = on_ranks(2, Duration::from_secs(60), |g| {
        let r = g.rank() as f64;
        // all_reduce sums in place.
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (r + 1.0);
        let b = Tensor::full([2, 2], r + 10.0, (Kind::Float, Device::Cpu));
        g.all_reduce(&a, ReduceOp::Sum).unwrap();
        g.all_reduce(&b, ReduceOp::Sum).unwrap();
        let m = Tensor::from_slice(&[r as f32, -(r as f32)]);
        g.all_reduce(&m, ReduceOp::Max).unwrap();
        // broadcast from rank 1.
        let c = Tensor::from_slice(&[r as f32; 4]);
        g.broadcast(&c, 1).unwrap();
        // all_gather: rank r contributes [r, r].
        let mine = Tensor::from_slice(&[r as f32, r as f32]);
        let all = Tensor::zeros([2 * g.world() as i64], (Kind::Float, Device::Cpu));
        g.all_gather(&all, &mine).unwrap();
        // reduce_scatter: every rank holds [1, 2, 3, 4] · (r + 1); rank r keeps its half of the sum.
        let full = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]) * (r + 1.0);
        let half = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        g.reduce_scatter(&half, &full, ReduceOp::Sum).unwrap();
        g.barrier().unwrap();
        (values(&a), values(&b), values(&m), values(&c), values(&all), values(&half))
    });
    for (rank, (a, b, m, c, all, half)) in out.into_iter().enumerate() {
        assert_eq!(a, vec![3.0, 6.0, 9.0], "rank {rank}");
        assert_eq!(b, vec![21.0; 4], "rank {rank}");
        assert_eq!(m, vec![1.0, 0.0], "rank {rank}");
        assert_eq!(c, vec![1.0; 4], "rank {rank}");
        assert_eq!(all, vec![0.0, 0.0, 1.0, 1.0], "rank {rank}");
        let expect = if rank == 0 { vec![3.0, 6.0] } else { vec![9.0, 12.0] };
        assert_eq!(half, expect, "rank {rank}");
    }
}

#[test]
fn bf16_and_f64_reduce_like_f32() {
    let out = on_ranks(2, Duration::from_secs(60), |g| {
        let r = g.rank() as f64;
        let x = Tensor::from_slice(&[0.5f64, 1.5]) + r;
        let y = (Tensor::from_slice(&[0.5f32, 1.5]) + r).to_kind(Kind::BFloat16);
        g.all_reduce(&x, ReduceOp::Sum).unwrap();
        g.all_reduce(&y, ReduceOp::Sum).unwrap();
        (values(&x), values(&y))
    });
    for (x, y) in out {
        assert_eq!(x, vec![2.0, 4.0]);
        assert_eq!(y, vec![2.0, 4.0]);
    }
}

#[test]
fn a_missing_rank_is_a_timeout_error_naming_the_rank_not_a_hang() {
    let port = free_port();
    let started = std::time::Instant::now();
    // Rank 1 never comes: the server's wait for its workers times out.
    let err = Store::tcp("127.0.0.1", port, 2, true, Duration::from_secs(2), "test")
        .and_then(|s| ProcessGroup::new(Backend::Gloo, s, 0, 2, Duration::from_secs(2)))
        .expect_err("a group with a missing rank must fail");
    let text = format!("{err:#}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert!(text.contains("127.0.0.1") || text.contains("rank 0"), "{text}");
}

#[test]
fn mismatched_tensors_are_c10d_errors_not_crashes() {
    let out = on_ranks(2, Duration::from_secs(20), |g| {
        // Different sizes on the two ranks: Gloo checks and fails on both.
        let t = Tensor::zeros([2 + g.rank() as i64], (Kind::Float, Device::Cpu));
        g.all_gather(&Tensor::zeros([1], (Kind::Float, Device::Cpu)), &t)
            .err()
            .map(|e| format!("{e:#}"))
    });
    for (rank, err) in out.into_iter().enumerate() {
        let err = err.unwrap_or_else(|| panic!("rank {rank} accepted a wrong output size"));
        assert!(err.contains(&format!("rank {rank} of 2")), "{err}");
        assert!(!err.contains("frame #"), "libtorch's C++ backtrace leaked into: {err}");
    }
}

/// Whether the venv `just setup` made holds the headers NCCL's process group compiles against
/// (torch's CUDA runtime and NCCL wheels, and the crt/CCCL header wheels of requirements.txt).
fn venv_has_nccl_headers() -> Option<bool> {
    let venv = std::path::PathBuf::from(std::env::var_os("SPICE_VENV")?);
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let site = lib.flatten().map(|e| e.path().join("site-packages")).find(|p| p.is_dir())?;
    Some(
        [
            "nvidia/cu13/include/crt/host_config.h",
            "nvidia/cu13/include/nv/target",
            "nvidia/nccl/include/nccl.h",
        ]
        .iter()
        .all(|f| site.join(f).exists())
            && site.join("torch/lib/libtorch_cuda.so").exists(),
    )
}

#[test]
fn nccl_is_compiled_in_with_the_setup_headers_and_without_a_gpu_is_an_error() {
    let compiled = spice_dist::c10d::nccl_available();
    match venv_has_nccl_headers() {
        Some(headers) => {
            println!("NCCL headers in the venv: {headers}; NCCL compiled in: {compiled}");
            assert_eq!(compiled, headers, "the build must compile NCCL in exactly when it can");
        }
        None => {
            println!("SPICE_VENV is not set: not checking that NCCL is compiled in ({compiled})")
        }
    }
    if tch::Cuda::is_available() {
        println!("a GPU is present: NCCL itself is pipelines/gpu-check.sh's to run");
        return;
    }
    // No GPU: asking for NCCL fails with c10d's (or the shim's) reason, without crashing.
    let timeout = Duration::from_secs(20);
    let store = Store::tcp("127.0.0.1", free_port(), 1, true, timeout, "nccl").unwrap();
    let err = match ProcessGroup::new(Backend::Nccl, store, 0, 1, timeout) {
        Ok(_) => panic!("an NCCL group without a GPU must be an error"),
        Err(e) => format!("{e:#}"),
    };
    println!("NCCL without a GPU: {err}");
    assert!(err.contains("rank 0 of 1"), "{err}");
    assert!(!err.contains("Exception raised from"), "a C++ backtrace leaked: {err}");
}
