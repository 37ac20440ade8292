//! How `spice-update` runs data-parallel: as the launcher of `update.processes` local ranks
//! (what torchrun does on one node), or as one rank of a job a launcher started (our own,
//! torchrun, or Slurm's `srun` with one task per GPU), joining its c10d process group.

use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use spice_dist::c10d::{Backend, ProcessGroup, Store};
use spice_dist::Topology;
use spice_lm::Device;

/// How long a collective (or the rendezvous) waits for the other ranks before it fails:
/// `SPICE_DIST_TIMEOUT` seconds, else 30 minutes (torch.distributed's Gloo default).
pub fn timeout() -> Result<Duration> {
    parse_timeout(std::env::var("SPICE_DIST_TIMEOUT").ok())
}

fn parse_timeout(value: Option<String>) -> Result<Duration> {
    match value {
        None => Ok(Duration::from_secs(30 * 60)),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => bail!("SPICE_DIST_TIMEOUT={s:?}: expected a whole number of seconds above 0"),
        },
    }
}

/// What this process is in the update.
#[derive(Debug)]
pub enum Part {
    /// One process: no launcher and `update.processes = 1`.
    Single,
    /// Start `n` local ranks and wait for them.
    Launcher(usize),
    /// One rank of a data-parallel job.
    Rank(Topology),
}

impl Part {
    /// From the launcher's environment, else `update.processes`. A launcher's world of one
    /// is a process group of one, as in torch.distributed (the GPU check runs NCCL that way).
    pub fn find(processes: u32) -> Result<Part> {
        Ok(match Topology::from_env()? {
            Some(t) => Part::Rank(t),
            None if processes > 1 => Part::Launcher(processes as usize),
            None => Part::Single,
        })
    }
}

/// Run this same command as `n` local ranks, torchrun-style: each gets `RANK`, `WORLD_SIZE`,
/// `LOCAL_RANK`, `MASTER_ADDR`/`MASTER_PORT` of a free local port and its share of the cores.
/// Returns once all have exited 0; when one fails, the others are stopped and the error names
/// the rank.
pub fn launch_local(n: usize) -> Result<()> {
    let exe = std::env::current_exe().context("finding the spice-update executable")?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port for the ranks' rendezvous")?
        .port();
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let threads =
        std::env::var("SPICE_LM_THREADS").ok().unwrap_or_else(|| (cores / n).max(1).to_string());
    tracing::info!(ranks = n, port, threads_per_rank = %threads, "update: starting data-parallel ranks");
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for rank in 0..n {
        let child = Command::new(&exe)
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("SPICE_LM_THREADS", &threads)
            .spawn()
            .with_context(|| format!("starting update rank {rank} ({})", exe.display()));
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(e);
            }
        }
    }
    wait_all(children)
}

/// Wait for every rank; the first to fail stops the others.
fn wait_all(mut children: Vec<Child>) -> Result<()> {
    let mut done = vec![false; children.len()];
    while done.iter().any(|d| !d) {
        for (rank, child) in children.iter_mut().enumerate() {
            if done[rank] {
                continue;
            }
            if let Some(status) =
                child.try_wait().with_context(|| format!("waiting for rank {rank}"))?
            {
                done[rank] = true;
                if !status.success() {
                    stop(&mut children);
                    bail!(
                        "update rank {rank} of {} failed ({status}); the other ranks were stopped \
                         and nothing was committed",
                        done.len()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn stop(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Join the job's process group: NCCL for CUDA, Gloo otherwise; rank 0 serves the store.
pub fn join(t: &Topology, device: Device) -> Result<ProcessGroup> {
    let timeout = timeout()?;
    let backend = Backend::for_device(device);
    let store =
        Store::tcp(&t.master_addr, t.master_port, t.world, t.rank == 0, timeout, "spice-update")
            .with_context(|| format!("rank {} of {}: rendezvous", t.rank, t.world))?;
    let group = ProcessGroup::new(backend, store, t.rank, t.world, timeout)?;
    tracing::info!(
        rank = t.rank,
        world = t.world,
        backend = backend.name(),
        "update: joined the process group"
    );
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_timeout_is_an_error_naming_the_variable() {
        assert_eq!(parse_timeout(None).unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_timeout(Some("3".into())).unwrap(), Duration::from_secs(3));
        for bad in ["", "0", "10s", "-1", "1.5"] {
            let err = parse_timeout(Some(bad.into())).unwrap_err().to_string();
            assert!(err.contains("SPICE_DIST_TIMEOUT"), "{bad}: {err}");
        }
    }
}
