//! Who this process is in a data-parallel job, read from the environment the launcher set:
//! torchrun's `RANK`/`WORLD_SIZE`/`LOCAL_RANK`/`MASTER_ADDR`/`MASTER_PORT` (which
//! `update.processes` sets for its local ranks too), else Slurm's `SLURM_PROCID`/
//! `SLURM_NTASKS`/`SLURM_LOCALID` with rank 0 on the first host of the step's node list.

use anyhow::{bail, Context, Result};

/// The default rendezvous port, torchrun's.
pub const DEFAULT_PORT: u16 = 29500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub rank: usize,
    pub world: usize,
    /// This process's index on its node: which GPU it drives.
    pub local_rank: usize,
    /// Where rank 0 serves the TCPStore.
    pub master_addr: String,
    pub master_port: u16,
}

impl Topology {
    /// One process: no launcher.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: DEFAULT_PORT,
        }
    }

    /// Read the launcher's environment; `None` when no launcher set one (world 1).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |k: &str| -> Result<Option<usize>> {
            var(k)
                .map(|v| {
                    v.trim().parse::<usize>().with_context(|| format!("{k}={v:?} is not a count"))
                })
                .transpose()
        };
        let port = || -> Result<u16> {
            match var("MASTER_PORT") {
                Some(p) => {
                    p.trim().parse().with_context(|| format!("MASTER_PORT={p:?} is not a port"))
                }
                None => Ok(DEFAULT_PORT),
            }
        };
        let topology = if let (Some(rank), Some(world)) = (num("RANK")?, num("WORLD_SIZE")?) {
            Self {
                rank,
                world,
                local_rank: num("LOCAL_RANK")?.unwrap_or(rank),
                master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
                master_port: port()?,
            }
        } else if let (Some(rank), Some(world @ 2..)) = (num("SLURM_PROCID")?, num("SLURM_NTASKS")?)
        {
            // A job of one task is no launcher: its batch script has SLURM_PROCID=0 too.
            let nodes = var("SLURM_STEP_NODELIST").or_else(|| var("SLURM_JOB_NODELIST"));
            let master_addr = match var("MASTER_ADDR") {
                Some(addr) => addr,
                None => first_host(nodes.as_deref().unwrap_or("127.0.0.1"))?,
            };
            // A port every task of the job derives alike, so parallel jobs on one node differ.
            let master_port = match var("MASTER_PORT") {
                Some(_) => port()?,
                None => match num("SLURM_JOB_ID")? {
                    Some(job) => 20000 + (job % 20000) as u16,
                    None => DEFAULT_PORT,
                },
            };
            Self {
                rank,
                world,
                local_rank: num("SLURM_LOCALID")?.unwrap_or(0),
                master_addr,
                master_port,
            }
        } else {
            return Ok(None);
        };
        if topology.rank >= topology.world {
            bail!("rank {} is not below the world size {}", topology.rank, topology.world);
        }
        Ok(Some(topology))
    }
}

/// The first host of a Slurm host list: `node[3-5,7],gpu1` → `node3`.
pub fn first_host(list: &str) -> Result<String> {
    let list = list.trim();
    let first = match list.find(['[', ',']) {
        None => return Ok(list.to_owned()),
        Some(i) if list.as_bytes()[i] == b',' => return Ok(list[..i].to_owned()),
        Some(i) => i,
    };
    let prefix = &list[..first];
    let rest = &list[first + 1..];
    let end =
        rest.find(']').with_context(|| format!("unclosed '[' in the Slurm host list {list:?}"))?;
    let range = rest[..end].split(',').next().unwrap_or_default();
    let low = range.split('-').next().unwrap_or_default();
    if low.is_empty() {
        bail!("empty range in the Slurm host list {list:?}");
    }
    Ok(format!("{prefix}{low}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn torchrun_variables_win_over_slurm() {
        let t = Topology::from_vars(vars(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.0.0.5"),
            ("MASTER_PORT", "29600"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            t,
            Topology {
                rank: 1,
                world: 2,
                local_rank: 1,
                master_addr: "10.0.0.5".into(),
                master_port: 29600
            }
        );
    }

    #[test]
    fn slurm_tasks_rendezvous_at_the_first_node_on_a_job_derived_port() {
        let t = Topology::from_vars(vars(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_STEP_NODELIST", "gpu[07-08],cpu1"),
            ("SLURM_JOB_ID", "123456"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.rank, 3);
        assert_eq!(t.local_rank, 1);
        assert_eq!(t.master_addr, "gpu07");
        assert_eq!(t.master_port, 20000 + (123456 % 20000) as u16);
    }

    #[test]
    fn no_launcher_is_none_and_bad_values_name_the_variable() {
        assert_eq!(Topology::from_vars(vars(&[])).unwrap(), None);
        // One Slurm task (any batch script) is no launcher.
        let one = vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]);
        assert_eq!(Topology::from_vars(one).unwrap(), None);
        let err = Topology::from_vars(vars(&[("RANK", "x"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert!(format!("{err:#}").contains("RANK=\"x\""), "{err:#}");
        let err = Topology::from_vars(vars(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert!(format!("{err:#}").contains("not below"), "{err:#}");
    }

    #[test]
    fn slurm_host_lists() {
        assert_eq!(first_host("node1").unwrap(), "node1");
        assert_eq!(first_host("a,b").unwrap(), "a");
        assert_eq!(first_host("n[3-5,7],g1").unwrap(), "n3");
        assert_eq!(first_host("n[12]").unwrap(), "n12");
        assert!(first_host("n[3-5").is_err());
    }
}
