//! `fuse-backend-rs-server SOURCE MOUNTPOINT`: fuse-backend-rs 0.14's `PassthroughFs` over
//! SOURCE, served on a `FuseSession` by one thread, as the crate's documentation builds it.
//! It speaks FUSE 7.33 and never asks for passthrough: every READ and WRITE is served.

use std::path::Path;
use std::sync::Arc;

use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::passthrough::{Config, PassthroughFs};
use fuse_backend_rs::transport::FuseSession;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, source, mountpoint] = &args[..] else {
        eprintln!("usage: fuse-backend-rs-server SOURCE MOUNTPOINT");
        std::process::exit(2);
    };
    if let Err(e) = serve(source, mountpoint) {
        eprintln!("fuse-backend-rs-server: {e}");
        std::process::exit(1);
    }
}

fn serve(source: &str, mountpoint: &str) -> Result<(), Box<dyn std::error::Error>> {
    let fs: PassthroughFs<()> = PassthroughFs::new(Config {
        root_dir: source.into(),
        do_import: true,
        ..Default::default()
    })?;
    fs.import()?;
    let server = Arc::new(Server::new(Arc::new(fs)));
    let mut session = FuseSession::new(Path::new(mountpoint), "fuse-backend-rs", "", false)?;
    session.mount()?;
    let mut channel = session.new_channel()?;
    // Until the kernel says the connection is gone (unmounted or aborted).
    loop {
        match channel.get_request() {
            Ok(Some((reader, writer))) => {
                if let Err(e) = server.handle_message(reader, writer.into(), None, None) {
                    if matches!(e, fuse_backend_rs::Error::EncodeMessage(_)) {
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    Ok(())
}
