//! Cross-play cells (`spice crossplay`): one stage run for a Challenger policy C and a
//! Reasoner policy R, on the run's cross-play documents, outside the iteration folders.
//!
//! ```text
//! <run>/crossplay/challenger-0003/challenger/ tasks/            Challenger policy 3's tasks
//! <run>/crossplay/challenger-0003/reasoner-0000/rollouts/ scored/  Reasoner policy 0's answers
//! ```
//!
//! Policy i is the model that played iteration i: the initial model for 0, the checkpoint
//! of iteration i - 1 otherwise.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// One cross-play cell: whose tasks (Challenger policy) answered by whom (Reasoner policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub challenger: u32,
    pub reasoner: u32,
}

/// The flag the four generation and scoring stages take to run a cross-play cell.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CellArgs {
    /// Run a cross-play cell `C:R` instead of an iteration: Challenger policy C writes tasks
    /// for the run's cross-play documents and Reasoner policy R answers them (policy i played
    /// iteration i; 0 is the initial model), under <run>/crossplay/. `spice crossplay` runs
    /// every cell; `--iter` is not used.
    #[arg(long, value_name = "C:R")]
    pub crossplay: Option<Cell>,
}

impl Cell {
    /// `<run>/crossplay/challenger-CCCC/`: the Challenger's attempts and tasks, shared by every
    /// Reasoner that answers them.
    pub fn challenger_dir(root: &Path, challenger: u32) -> PathBuf {
        root.join("crossplay").join(format!("challenger-{challenger:04}"))
    }

    /// `<run>/crossplay/challenger-CCCC/reasoner-RRRR/`: the answers and their scores.
    pub fn dir(&self, root: &Path) -> PathBuf {
        Self::challenger_dir(root, self.challenger).join(format!("reasoner-{:04}", self.reasoner))
    }

    /// The folder of shard `name` of this cell: the Challenger's folders (`challenger`, `tasks`)
    /// depend only on the Challenger, the rest on both.
    pub fn folder(&self, root: &Path, name: &str) -> PathBuf {
        match name {
            "challenger" | "tasks" => Self::challenger_dir(root, self.challenger).join(name),
            _ => self.dir(root).join(name),
        }
    }

    /// The cell a cell folder names, from its path (`…/challenger-0003/reasoner-0000`).
    pub fn from_dir(dir: &Path) -> Option<Cell> {
        let r = dir.file_name()?.to_str()?.strip_prefix("reasoner-")?.parse().ok()?;
        let c = dir.parent()?.file_name()?.to_str()?.strip_prefix("challenger-")?.parse().ok()?;
        Some(Cell { challenger: c, reasoner: r })
    }
}

impl FromStr for Cell {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Cell> {
        let (c, r) = s
            .split_once(':')
            .with_context(|| format!("cross-play cell {s:?} is not C:R (e.g. 3:0)"))?;
        let parse = |v: &str, what: &str| -> Result<u32> {
            v.trim().parse().with_context(|| format!("cross-play cell {s:?}: {what} {v:?}"))
        };
        let cell = Cell {
            challenger: parse(c, "Challenger policy")?,
            reasoner: parse(r, "Reasoner policy")?,
        };
        if s.contains(char::is_whitespace) {
            bail!("cross-play cell {s:?}: no spaces, e.g. 3:0");
        }
        Ok(cell)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.challenger, self.reasoner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_print_and_place_their_folders() {
        let cell: Cell = "3:0".parse().unwrap();
        assert_eq!(cell, Cell { challenger: 3, reasoner: 0 });
        assert_eq!(cell.to_string(), "3:0");
        let root = Path::new("r");
        assert_eq!(cell.folder(root, "tasks"), Path::new("r/crossplay/challenger-0003/tasks"));
        assert_eq!(
            cell.folder(root, "scored"),
            Path::new("r/crossplay/challenger-0003/reasoner-0000/scored")
        );
        assert_eq!(Cell::from_dir(&cell.dir(root)), Some(cell));
        assert!(Cell::from_dir(Path::new("r/crossplay/challenger-0003")).is_none());
        for bad in ["3", "3:", "a:1", "3:-1", "3: 1"] {
            assert!(bad.parse::<Cell>().is_err(), "{bad}");
        }
    }
}
