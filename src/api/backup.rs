//! `spoc.v1.BackupService`: online snapshots streamed to the caller.

use std::io::Read;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::pb::{self, backup_service_server::BackupService};
use crate::engine::Engine;
use crate::engine::backup::{SnapshotSummary, TempSnapshot};
use crate::offload;

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
            let taken = offload::blocking(async move { engine.snapshot() }).await;
            match taken
                .map_err(Status::from)
                .and_then(|t| t.map_err(Status::from))
            {
                Ok((file, summary)) => stream_file(file, summary, tx).await,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends the snapshot file in chunks, each read off the workers (a turn
/// per chunk: a slow reader holds none), then lets it be deleted.
async fn stream_file(
    file: TempSnapshot,
    summary: SnapshotSummary,
    tx: tokio::sync::mpsc::Sender<Result<pb::BackupChunk, Status>>,
) {
    let unreadable = |e: std::io::Error| Status::internal(format!("cannot read the snapshot: {e}"));
    let path = file.path.clone();
    let opened = offload::blocking(async move { std::fs::File::open(path) }).await;
    let mut reader = match opened
        .map_err(Status::from)
        .and_then(|r| r.map_err(unreadable))
    {
        Ok(reader) => reader,
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    loop {
        let read = offload::blocking(async move {
            let mut data = vec![0u8; CHUNK_BYTES];
            let read = read_full(&mut reader, &mut data).map(|n| {
                data.truncate(n);
                data
            });
            (reader, read)
        })
        .await;
        let data = match read {
            Ok((back, Ok(data))) => {
                reader = back;
                data
            }
            Ok((_, Err(e))) => {
                let _ = tx.send(Err(unreadable(e))).await;
                return;
            }
            Err(panicked) => {
                let _ = tx.send(Err(panicked.into())).await;
                return;
            }
        };
        if data.is_empty() {
            return; // `file` is dropped, and deleted, here
        }
        let chunk = pb::BackupChunk {
            data,
            total_bytes: summary.bytes as i64,
            entries: summary.entries as i64,
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return; // the client went away
        }
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
