//! One S3 multipart upload, with a bounded number of parts in flight so the
//! snapshot keeps streaming while parts upload, and memory stays bounded.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client as S3Client;
use bytes::Bytes;
use etcd_aws_io::aws::error as aws_error;
use tokio::task::JoinSet;

/// S3 refuses more parts than this in one upload.
const MAX_PARTS: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of s3://{bucket}/{key} failed: {message}")]
pub struct UploadError {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    pub message: String,
}

pub struct MultipartUpload {
    s3: S3Client,
    bucket: String,
    key: String,
    upload_id: String,
    next_part: i32,
    max_in_flight: usize,
    in_flight: JoinSet<Result<CompletedPart, UploadError>>,
    done: Vec<CompletedPart>,
}

impl MultipartUpload {
    pub async fn create(
        s3: &S3Client,
        bucket: &str,
        key: &str,
        max_in_flight: usize,
    ) -> Result<Self, UploadError> {
        let error = |operation, message| UploadError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message,
        };
        let created = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(|e| error("CreateMultipartUpload", aws_error::read(&e).summary))?;
        let upload_id = created
            .upload_id()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                error(
                    "CreateMultipartUpload",
                    "the answer has no upload id".into(),
                )
            })?
            .to_owned();
        Ok(Self {
            s3: s3.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            next_part: 1,
            max_in_flight: max_in_flight.max(1),
            in_flight: JoinSet::new(),
            done: Vec::new(),
        })
    }

    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    fn error(&self, operation: &'static str, message: String) -> UploadError {
        UploadError {
            operation,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            message,
        }
    }

    /// Starts uploading the next part; waits first while the limit of parts
    /// in flight is reached, and reports the first failed part.
    pub async fn send(&mut self, body: Bytes) -> Result<(), UploadError> {
        if self.next_part > MAX_PARTS {
            return Err(self.error(
                "UploadPart",
                format!("more than {MAX_PARTS} parts; raise the part size"),
            ));
        }
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        let part_number = self.next_part;
        self.next_part += 1;
        let request = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let failed = self.error("UploadPart", String::new());
        self.in_flight.spawn(async move {
            let uploaded = request.send().await.map_err(|e| UploadError {
                message: format!("part {part_number}: {}", aws_error::read(&e).summary),
                ..failed
            })?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build())
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), UploadError> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.done.push(part);
                Ok(())
            }
            Some(Ok(Err(error))) => Err(error),
            Some(Err(join)) => Err(self.error("UploadPart", format!("upload task failed: {join}"))),
            None => Ok(()),
        }
    }

    /// Waits for the parts in flight, then assembles the object. An upload
    /// with no part at all cannot be completed; the caller never has one,
    /// because a snapshot is never empty.
    pub async fn complete(&mut self) -> Result<(), UploadError> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number());
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", aws_error::read(&e).summary))?;
        Ok(())
    }

    /// Gives the upload up: parts in flight are cancelled and S3 discards the
    /// parts it holds, so a failed run leaves neither an object nor storage
    /// billed for invisible parts.
    pub async fn abort(mut self) -> Result<(), UploadError> {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(|e| self.error("AbortMultipartUpload", aws_error::read(&e).summary))?;
        Ok(())
    }
}
