//! Load a model folder and save it again through `checkpoint::save` (to check by hand that
//! `transformers` loads what this crate writes):
//!
//!     cargo run --release -p spice-lm --example resave -- IN_DIR OUT_DIR

use anyhow::{Context, Result};
use spice_lm::{checkpoint, Device, Kind, Policy};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let src = args.next().context("usage: resave IN_DIR OUT_DIR")?;
    let dst = args.next().context("usage: resave IN_DIR OUT_DIR")?;
    let policy = Policy::load(src.as_ref(), Device::Cpu, Kind::Float)?;
    checkpoint::save(&policy, dst.as_ref())?;
    eprintln!("saved {dst}");
    Ok(())
}
