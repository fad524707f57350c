//! The job client: `pushgate jobs ...` calls `pushgate serve`'s JSON API over HTTP/1 with the
//! token from the config, as XenRT's `xenrt` command calls its job server.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "`{0}` is not a server address like http://127.0.0.1:8077 (https needs a proxy in front)"
    )]
    Url(String),
    #[error("cannot reach {server}: {message}")]
    Connect { server: String, message: String },
    #[error("{server} answered {status}: {message}")]
    Refused {
        server: String,
        status: StatusCode,
        message: String,
    },
    #[error("{server} answered something unreadable: {message}")]
    Garbled { server: String, message: String },
}

/// How long a call may take before the client gives up.
const TIMEOUT: Duration = Duration::from_secs(60);

pub struct ApiClient {
    /// `host:port`.
    authority: String,
    /// The path the server is mounted at (empty, or `/pushgate`).
    prefix: String,
    token: Option<String>,
    server: String,
}

impl ApiClient {
    pub fn new(server: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        let rest = server
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(server.to_string()))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(ClientError::Url(server.to_string()));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(ApiClient {
            authority,
            prefix: prefix.to_string(),
            token,
            server: server.trim_end_matches('/').to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.call(Method::GET, path, None).await?;
        self.decode(&body)
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let body = self.call(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Garbled {
            server: self.server.clone(),
            message: e.to_string(),
        })?;
        let answer = self.call(Method::POST, path, Some(json)).await?;
        self.decode(&answer)
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| ClientError::Garbled {
            server: self.server.clone(),
            message: e.to_string(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let connect_error = |message: String| ClientError::Connect {
            server: self.server.clone(),
            message,
        };
        let work = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| connect_error(e.to_string()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| connect_error(e.to_string()))?;
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.prefix))
                .header(hyper::header::HOST, &self.authority)
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(t) = &self.token {
                request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| connect_error(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| connect_error(e.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| connect_error(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(ClientError::Refused {
                    server: self.server.clone(),
                    status,
                    message: String::from_utf8_lossy(&bytes).trim().to_string(),
                });
            }
            Ok(bytes)
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| connect_error(format!("no answer within {TIMEOUT:?}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let c = ApiClient::new("http://127.0.0.1:8077/", None).unwrap();
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("127.0.0.1:8077", "")
        );
        let c = ApiClient::new("http://gate.example.org/pushgate/", None).unwrap();
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("gate.example.org:80", "/pushgate")
        );
        for bad in ["https://x", "x:1", "http://", "http://u@x/"] {
            assert!(ApiClient::new(bad, None).is_err(), "{bad}");
        }
    }
}
