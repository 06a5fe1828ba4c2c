//! `address`: prints the relay's address as the last `serve` saved it.

use anyhow::bail;
use passage_relay::datadir::DataDir;

use super::error::plain;
use super::{DirArgs, data_dir_of};

pub(super) fn run_address(args: &DirArgs) -> anyhow::Result<()> {
    let path = data_dir_of(args)?;
    let dir = DataDir::open(&path).map_err(plain)?;
    match dir.read_address().map_err(plain)? {
        Some(address) if !address.is_empty() => {
            println!("{address}");
            Ok(())
        }
        _ => bail!(
            "no address in {} yet — start the relay once with `passage-relay serve --data {}`",
            path.display(),
            path.display()
        ),
    }
}
