//! Per-job artifacts (`jobs/<job_id>/input.json`, `summary.json`, ...) behind
//! the `object_store` API: a local directory by default, in memory for
//! tests; S3 and GCS are further `object_store` backends behind the same type.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;

/// The artifacts of a stored verdict: the request, the verdict, and Lean's
/// messages. A stored verdict owes these until they are written (the outbox).
pub const VERDICT_ARTIFACTS: [&str; 3] = ["input.json", "summary.json", "messages.json"];

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("unsupported artifact url `{0}`")]
    UnsupportedUrl(String),
    #[error("invalid artifact name `{0}`")]
    InvalidName(String),
    #[error("artifact store failed: {0}")]
    Backend(String),
}

/// Where job artifacts live.
#[derive(Clone)]
pub struct ArtifactStore {
    backend: Arc<dyn ObjectStore>,
}

/// A job id or artifact name is one plain path segment.
fn segment(text: &str) -> Result<&str, ArtifactError> {
    let plain = !text.is_empty()
        && text != "."
        && text != ".."
        && !text.contains(['/', '\\', '\0'])
        && !text.contains("..");
    if plain {
        Ok(text)
    } else {
        Err(ArtifactError::InvalidName(text.to_string()))
    }
}

fn key(job_id: &str, name: &str) -> Result<ObjectPath, ArtifactError> {
    Ok(ObjectPath::from(format!(
        "jobs/{}/{}",
        segment(job_id)?,
        segment(name)?
    )))
}

fn backend_error(error: object_store::Error) -> ArtifactError {
    ArtifactError::Backend(error.to_string())
}

impl ArtifactStore {
    /// `file:///abs/dir` or a plain directory path (created if missing), or `memory://`.
    pub fn open(url: &str) -> Result<ArtifactStore, ArtifactError> {
        if url == "memory://" {
            return Ok(ArtifactStore {
                backend: Arc::new(object_store::memory::InMemory::new()),
            });
        }
        let directory = match url.strip_prefix("file://") {
            Some(path) => path,
            None if !url.contains("://") && !url.is_empty() => url,
            None => return Err(ArtifactError::UnsupportedUrl(url.to_string())),
        };
        std::fs::create_dir_all(directory).map_err(|error| {
            ArtifactError::Backend(format!("cannot create {directory}: {error}"))
        })?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(directory)
            .map_err(backend_error)?;
        Ok(ArtifactStore {
            backend: Arc::new(local),
        })
    }

    /// Write `jobs/<job_id>/<name>`.
    pub async fn put(&self, job_id: &str, name: &str, data: Bytes) -> Result<(), ArtifactError> {
        self.backend
            .put(&key(job_id, name)?, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    /// Read `jobs/<job_id>/<name>`; `None` if absent.
    pub async fn get(&self, job_id: &str, name: &str) -> Result<Option<Bytes>, ArtifactError> {
        match self.backend.get(&key(job_id, name)?).await {
            Ok(result) => result.bytes().await.map(Some).map_err(backend_error),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(backend_error(error)),
        }
    }

    /// Names of the artifacts of one job.
    pub async fn list(&self, job_id: &str) -> Result<Vec<String>, ArtifactError> {
        let prefix = ObjectPath::from(format!("jobs/{}", segment(job_id)?));
        let objects: Vec<object_store::ObjectMeta> = self
            .backend
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(backend_error)?;
        let mut names: Vec<String> = objects
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(store: ArtifactStore) {
        store
            .put("job1", "summary.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        store
            .put("job1", "input.json", Bytes::from_static(b"[1]"))
            .await
            .unwrap();
        assert_eq!(
            store.get("job1", "summary.json").await.unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        assert_eq!(store.get("job1", "missing.json").await.unwrap(), None);
        assert_eq!(
            store.list("job1").await.unwrap(),
            vec!["input.json".to_string(), "summary.json".to_string()]
        );
        assert_eq!(store.list("job2").await.unwrap(), Vec::<String>::new());
        for (job, name) in [
            ("../x", "a"),
            ("job1", "../../etc/passwd"),
            ("", "a"),
            ("job1", "a/b"),
            ("job1", "a\0b"),
        ] {
            assert!(
                matches!(
                    store.put(job, name, Bytes::new()).await,
                    Err(ArtifactError::InvalidName(_))
                ),
                "{job:?} {name:?}"
            );
        }
    }

    #[tokio::test]
    async fn memory_artifacts_round_trip() {
        round_trip(ArtifactStore::open("memory://").unwrap()).await;
    }

    #[tokio::test]
    async fn local_artifacts_round_trip_and_land_under_jobs() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(ArtifactStore::open(dir.path().to_str().unwrap()).unwrap()).await;
        assert!(dir.path().join("jobs/job1/summary.json").is_file());
        assert!(matches!(
            ArtifactStore::open("s3://bucket"),
            Err(ArtifactError::UnsupportedUrl(_))
        ));
    }
}
