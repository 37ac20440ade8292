//! Data parallelism for the update, on PyTorch's own distributed engine.
//!
//! - [`c10d`]: a TCPStore for rendezvous and a process group (Gloo on CPU, NCCL on CUDA) with
//!   the collectives the update uses, on `tch` tensors. The collectives are c10d's; the
//!   C++ shim in `cxx/c10d.cpp` only converts arguments and errors.
//! - [`topology`]: who this process is (rank, world, local rank) and where rank 0 listens,
//!   read the way torchrun and Slurm publish it.

pub mod c10d;
pub mod topology;

pub use c10d::{ProcessGroup, ReduceOp, Store};
pub use topology::Topology;
