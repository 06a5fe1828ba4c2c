//! `rotate-key`: gives the relay a new key, keeping the old one for an overlap in which
//! clients with the old address are moved to the new one (see
//! `passage_relay::key_rotation`). Prints the new address; the relay must be restarted
//! to serve it.

use std::num::NonZeroU16;

use passage_relay::datadir::DataDir;
use passage_relay::key_rotation::{self, MAX_OVERLAP_DAYS};
use passage_relay::server::unix_now;
use passage_transport::RelayAddress;

use super::error::plain;
use super::{RotateKeyArgs, data_dir_of};

pub(super) fn run_rotate_key(args: &RotateKeyArgs) -> anyhow::Result<()> {
    if !(1..=MAX_OVERLAP_DAYS).contains(&args.overlap_days) {
        anyhow::bail!(
            "--overlap-days {} is out of range — use 1 to {MAX_OVERLAP_DAYS} (long enough for people whose phone is off to come back)",
            args.overlap_days
        );
    }
    let path = data_dir_of(&args.dir)?;
    let dir = DataDir::open(&path).map_err(plain)?;
    let (new, until) =
        key_rotation::rotate(&dir, args.overlap_days * 86_400, unix_now()).map_err(plain)?;
    // The host and port clients use are those of the last address line.
    let address = dir
        .read_address()
        .map_err(plain)?
        .and_then(|line| line.parse::<RelayAddress>().ok())
        .and_then(|old| {
            let port = NonZeroU16::new(old.port())?;
            Some(RelayAddress::new(new.pin(), old.host().clone(), port))
        });
    match address {
        Some(address) => {
            println!("new relay address: {address}");
            dir.write_address(&address.to_string()).map_err(plain)?;
        }
        None => println!("new relay key made; `passage-relay serve` prints its address"),
    }
    eprintln!(
        "passage-relay: restart the relay to serve the new key. Until unix time {until} ({} days), \
         clients that connect with the old address are told the new one; then the old key is \
         destroyed and the old address stops working. Give the new address to new users now.",
        args.overlap_days
    );
    Ok(())
}
