//! `spoc.v1.BackupService`: online snapshots streamed to the caller.

use std::io::Read;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::pb::{self, backup_service_server::BackupService};
use crate::engine::Engine;
use crate::engine::backup::{SnapshotSummary, TempSnapshot};

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
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_BUFFERED);
        let engine = self.engine.clone();
        // The reply starts at once and the snapshot is taken behind it: the
        // request timeout bounds the wait for a reply's start, and a large
        // store takes longer than that to copy. A failed snapshot is the
        // stream's status before any chunk.
        tokio::spawn(async move {
            let (file, summary) = match super::off_runtime(&engine, |e| e.snapshot()).await {
                Ok(taken) => taken,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            stream_file(file, summary, tx).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends the snapshot file in chunks, then lets it be deleted.
async fn stream_file(
    file: TempSnapshot,
    summary: SnapshotSummary,
    tx: tokio::sync::mpsc::Sender<Result<pb::BackupChunk, Status>>,
) {
    let _ = tokio::task::spawn_blocking(move || {
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
    })
    .await;
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
