//! `spoc.v1.BackupService`: online snapshots streamed to the caller.

use std::io::Read;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::pb::{self, backup_service_server::BackupService};
use crate::engine::Engine;

/// Bytes per streamed chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Chunks buffered between the file reader and the gRPC stream.
const CHUNKS_BUFFERED: usize = 4;

/// Serves backups over the engine.
pub struct BackupApi {
    engine: Arc<Engine>,
}

impl BackupApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl BackupService for BackupApi {
    type CreateBackupStream = ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<Self::CreateBackupStream>, Status> {
        let pb::CreateBackupRequest {} = request.into_inner();
        // The snapshot is taken before the reply starts, so a failure is
        // the call's status rather than a broken stream.
        let (file, summary) = super::off_runtime(&self.engine, |e| e.snapshot()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_BUFFERED);
        tokio::task::spawn_blocking(move || {
            // `file` lives until the last chunk is read, then is deleted.
            let mut reader = match std::fs::File::open(&file.path) {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!(
                        "cannot read the snapshot: {e}"
                    ))));
                    return;
                }
            };
            loop {
                let mut data = vec![0u8; CHUNK_BYTES];
                let n = match read_full(&mut reader, &mut data) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!(
                            "cannot read the snapshot: {e}"
                        ))));
                        return;
                    }
                };
                if n == 0 {
                    return;
                }
                data.truncate(n);
                let chunk = pb::BackupChunk {
                    data,
                    total_bytes: summary.bytes as i64,
                    entries: summary.entries as i64,
                };
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
