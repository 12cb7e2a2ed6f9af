//! Per-job artifacts (`input.json`, `summary.json`, ...) behind the
//! `object_store` API: a local directory by default, in memory for tests,
//! `s3://bucket/prefix` (AWS S3, MinIO and other S3-compatible servers) and
//! `gs://bucket/prefix` (Google Cloud Storage) through `object_store`'s own
//! backends, whose HTTP client is reqwest over rustls.
//!
//! Credentials come from the backends' usual environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT`; `GOOGLE_APPLICATION_CREDENTIALS`,
//! `GOOGLE_SERVICE_ACCOUNT`, or the instance's metadata server);
//! `ArtifactSettings` overrides the endpoint, the region and plain HTTP.
//!
//! Keys are sharded: a job's artifacts are written under
//! `jobs/<shard>/<job_id>/<name>`, where the shard is the first two hex
//! digits of the SHA-256 of the job id, so no directory holds every job
//! (at most 256 shards under `jobs/`). Artifacts written before sharding,
//! under `jobs/<job_id>/<name>`, stay readable where they are: reads try
//! the sharded key first, then the old one, and `delete_job` removes both.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, PutPayload};
use std::sync::Arc;

/// The artifacts of a stored verdict: the request, the verdict, and Lean's
/// messages. A stored verdict owes these until they are written (the outbox).
pub const VERDICT_ARTIFACTS: [&str; 3] = ["input.json", "summary.json", "messages.json"];

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("unsupported artifact url `{0}`: use a directory, file:///dir, memory://, s3://bucket/prefix or gs://bucket/prefix")]
    UnsupportedUrl(String),
    #[error("artifact url `{0}` names no bucket")]
    MissingBucket(String),
    #[error("artifact endpoint `{0}` is plain http: allow it explicitly (artifacts_allow_http), for tests only")]
    PlainHttpEndpoint(String),
    #[error("cannot configure the artifact store: {0}")]
    Configuration(String),
    #[error("invalid artifact name `{0}`")]
    InvalidName(String),
    #[error("artifact store failed: {0}")]
    Backend(String),
}

/// Settings of the S3 and GCS backends beyond their environment variables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArtifactSettings {
    /// The object store's base URL, e.g. `http://127.0.0.1:9000` for MinIO
    /// or an emulator; unset, the provider's own (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The S3 region; unset, `AWS_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// Allow an `http://` endpoint (tests and emulators only).
    pub allow_http: bool,
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

/// The shard of a job: the first two hex digits of the SHA-256 of its id.
pub fn shard(job_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(job_id.as_bytes());
    hex::encode(&digest[..1])
}

/// Where a job's artifacts are written: `jobs/<shard>/<job_id>`.
fn job_prefix(job_id: &str) -> Result<ObjectPath, ArtifactError> {
    let job_id = segment(job_id)?;
    Ok(ObjectPath::from(format!("jobs/{}/{job_id}", shard(job_id))))
}

/// Where a job's artifacts were written before sharding: `jobs/<job_id>`.
fn legacy_job_prefix(job_id: &str) -> Result<ObjectPath, ArtifactError> {
    Ok(ObjectPath::from(format!("jobs/{}", segment(job_id)?)))
}

fn key(job_id: &str, name: &str) -> Result<ObjectPath, ArtifactError> {
    Ok(job_prefix(job_id)?.child(segment(name)?))
}

fn legacy_key(job_id: &str, name: &str) -> Result<ObjectPath, ArtifactError> {
    Ok(legacy_job_prefix(job_id)?.child(segment(name)?))
}

/// Whether `location` is an artifact directly under `prefix` (so a legacy
/// prefix `jobs/ab` never takes in the shard `jobs/ab/...`).
fn directly_under(location: &ObjectPath, prefix: &ObjectPath) -> bool {
    location.parts().count() == prefix.parts().count() + 1
}

fn backend_error(error: object_store::Error) -> ArtifactError {
    ArtifactError::Backend(error.to_string())
}

/// `bucket/some/prefix` → (`bucket`, `some/prefix`); the prefix may be
/// empty and is taken as plain path segments.
fn bucket_and_prefix<'a>(url: &str, rest: &'a str) -> Result<(&'a str, &'a str), ArtifactError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(['?', '#', '@']) {
        return Err(ArtifactError::MissingBucket(url.to_string()));
    }
    let prefix = prefix.trim_matches('/');
    for part in prefix.split('/').filter(|part| !part.is_empty()) {
        segment(part)?;
    }
    Ok((bucket, prefix))
}

/// Client options: plain HTTP only when the settings allow it.
fn client_options(settings: &ArtifactSettings) -> Result<ClientOptions, ArtifactError> {
    if let Some(endpoint) = &settings.endpoint {
        if endpoint.starts_with("http://") && !settings.allow_http {
            return Err(ArtifactError::PlainHttpEndpoint(endpoint.clone()));
        }
    }
    Ok(ClientOptions::new().with_allow_http(settings.allow_http))
}

fn configuration_error(error: object_store::Error) -> ArtifactError {
    ArtifactError::Configuration(error.to_string())
}

fn open_s3(
    bucket: &str,
    settings: &ArtifactSettings,
) -> Result<Arc<dyn ObjectStore>, ArtifactError> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client_options(settings)?);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    Ok(Arc::new(builder.build().map_err(configuration_error)?))
}

/// GCS. An explicit endpoint is an emulator's or a private one's base URL,
/// reached without OAuth (the service-account document carries it).
fn open_gcs(
    bucket: &str,
    settings: &ArtifactSettings,
) -> Result<Arc<dyn ObjectStore>, ArtifactError> {
    let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client_options(settings)?);
    if let Some(endpoint) = &settings.endpoint {
        let account = serde_json::json!({
            "gcs_base_url": endpoint.trim_end_matches('/'),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        builder = builder.with_service_account_key(account.to_string());
    }
    Ok(Arc::new(builder.build().map_err(configuration_error)?))
}

impl ArtifactStore {
    /// `file:///abs/dir` or a plain directory path (created if missing),
    /// `memory://`, `s3://bucket/prefix` or `gs://bucket/prefix` (each with
    /// its backend's environment variables).
    pub fn open(url: &str) -> Result<ArtifactStore, ArtifactError> {
        ArtifactStore::open_with(url, &ArtifactSettings::default())
    }

    /// `open`, with explicit settings for the S3 and GCS backends.
    pub fn open_with(
        url: &str,
        settings: &ArtifactSettings,
    ) -> Result<ArtifactStore, ArtifactError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(url, rest)?;
            return Ok(ArtifactStore::with_prefix(
                open_s3(bucket, settings)?,
                prefix,
            ));
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(url, rest)?;
            return Ok(ArtifactStore::with_prefix(
                open_gcs(bucket, settings)?,
                prefix,
            ));
        }
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

    fn with_prefix(backend: Arc<dyn ObjectStore>, prefix: &str) -> ArtifactStore {
        let backend: Arc<dyn ObjectStore> = if prefix.is_empty() {
            backend
        } else {
            Arc::new(PrefixStore::new(backend, prefix))
        };
        ArtifactStore { backend }
    }

    /// Write `<name>` of `job_id` (under its sharded key).
    pub async fn put(&self, job_id: &str, name: &str, data: Bytes) -> Result<(), ArtifactError> {
        self.backend
            .put(&key(job_id, name)?, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    /// Read `<name>` of `job_id` (its sharded key, else its key from before
    /// sharding); `None` if absent.
    pub async fn get(&self, job_id: &str, name: &str) -> Result<Option<Bytes>, ArtifactError> {
        for location in [key(job_id, name)?, legacy_key(job_id, name)?] {
            match self.backend.get(&location).await {
                Ok(result) => return result.bytes().await.map(Some).map_err(backend_error),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(error) => return Err(backend_error(error)),
            }
        }
        Ok(None)
    }

    /// Every stored object of one job, under its sharded and its old key.
    async fn locations(&self, job_id: &str) -> Result<Vec<ObjectPath>, ArtifactError> {
        let mut locations = Vec::new();
        for prefix in [job_prefix(job_id)?, legacy_job_prefix(job_id)?] {
            let objects: Vec<object_store::ObjectMeta> = self
                .backend
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(backend_error)?;
            locations.extend(
                objects
                    .into_iter()
                    .map(|meta| meta.location)
                    .filter(|location| directly_under(location, &prefix)),
            );
        }
        Ok(locations)
    }

    /// Names of the artifacts of one job.
    pub async fn list(&self, job_id: &str) -> Result<Vec<String>, ArtifactError> {
        let mut names: Vec<String> = self
            .locations(job_id)
            .await?
            .iter()
            .filter_map(|location| location.filename().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Delete every artifact of one job (sharded and from before sharding);
    /// returns how many objects were deleted. Deleting what is already
    /// gone is not an error.
    pub async fn delete_job(&self, job_id: &str) -> Result<usize, ArtifactError> {
        let mut deleted = 0;
        for location in self.locations(job_id).await? {
            match self.backend.delete(&location).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(backend_error(error)),
            }
        }
        Ok(deleted)
    }

    /// Write an object at its key from before sharding (to test that such
    /// artifacts stay readable and are deleted).
    #[doc(hidden)]
    pub async fn put_unsharded(
        &self,
        job_id: &str,
        name: &str,
        data: Bytes,
    ) -> Result<(), ArtifactError> {
        self.backend
            .put(&legacy_key(job_id, name)?, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(backend_error)
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
    async fn artifacts_from_before_sharding_are_read_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        store
            .put_unsharded("old", "summary.json", Bytes::from_static(b"old"))
            .await
            .unwrap();
        store
            .put("old", "input.json", Bytes::from_static(b"new"))
            .await
            .unwrap();
        assert!(dir.path().join("jobs/old/summary.json").is_file());
        assert_eq!(
            store.get("old", "summary.json").await.unwrap().unwrap(),
            Bytes::from_static(b"old")
        );
        assert_eq!(
            store.list("old").await.unwrap(),
            vec!["input.json".to_string(), "summary.json".to_string()]
        );
        // A job whose id looks like a shard does not take in the shard.
        let shard_of_old = shard("old");
        store
            .put_unsharded(&shard_of_old, "x.json", Bytes::new())
            .await
            .unwrap();
        assert_eq!(
            store.list(&shard_of_old).await.unwrap(),
            vec!["x.json".to_string()]
        );
        assert_eq!(store.delete_job("old").await.unwrap(), 2);
        assert_eq!(store.list("old").await.unwrap(), Vec::<String>::new());
        assert_eq!(store.get("old", "summary.json").await.unwrap(), None);
        assert_eq!(store.delete_job("old").await.unwrap(), 0);
        assert_eq!(
            store.list(&shard_of_old).await.unwrap(),
            vec!["x.json".to_string()]
        );
    }

    #[tokio::test]
    async fn memory_artifacts_round_trip() {
        round_trip(ArtifactStore::open("memory://").unwrap()).await;
    }

    #[tokio::test]
    async fn local_artifacts_round_trip_and_land_in_shards_under_jobs() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(ArtifactStore::open(dir.path().to_str().unwrap()).unwrap()).await;
        let shard = shard("job1");
        assert_eq!(shard.len(), 2);
        assert!(dir
            .path()
            .join(format!("jobs/{shard}/job1/summary.json"))
            .is_file());
        assert!(!dir.path().join("jobs/job1").exists());
        assert!(matches!(
            ArtifactStore::open("ftp://bucket"),
            Err(ArtifactError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn cloud_urls_name_a_bucket_and_a_plain_prefix() {
        assert_eq!(
            bucket_and_prefix("s3://b/x/y/", "b/x/y/").unwrap(),
            ("b", "x/y")
        );
        assert_eq!(bucket_and_prefix("s3://b", "b").unwrap(), ("b", ""));
        for url in ["s3://", "gs:///prefix", "s3://a@b/x"] {
            assert!(
                matches!(
                    ArtifactStore::open(url),
                    Err(ArtifactError::MissingBucket(_))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            ArtifactStore::open("s3://bucket/a/../b"),
            Err(ArtifactError::InvalidName(_))
        ));
        let plain = ArtifactSettings {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..ArtifactSettings::default()
        };
        for url in ["s3://bucket", "gs://bucket"] {
            assert!(
                matches!(
                    ArtifactStore::open_with(url, &plain),
                    Err(ArtifactError::PlainHttpEndpoint(_))
                ),
                "{url}"
            );
        }
    }
}
