//! Bad login input shared by the Core cases (answered in the error shape) and the strict
//! input validation cases (refused with 4xx / INVALID_ARGUMENT): HTTP bodies and malformed
//! gRPC messages, each followed by proof that admin-srv is unharmed.

use anyhow::{Context, Result, bail};
use gomicro_proto::admin_srv::v1::LoginRequest;
use prost::Message;
use serde_json::{Value, json};

use super::{identity, raw_grpc, still_same_pods};
use crate::context::Ctx;
use crate::login::{grpc_login, http_login};

/// Checks `{"code":<status>,"reason":..,"message":..,"metadata":{}}`.
pub(crate) fn check_error_shape(status: u16, body: &Value) -> Result<()> {
    if body["code"].as_u64() != Some(status as u64) {
        bail!(
            "error body code is {}, expected the HTTP status {status}: {body}",
            body["code"]
        );
    }
    if !body["reason"].is_string() || !body["message"].is_string() || !body["metadata"].is_object()
    {
        bail!("error body lacks reason/message strings or a metadata object: {body}");
    }
    Ok(())
}

/// One bad HTTP login body: label, content type, body, and the 4xx statuses that refuse it
/// (strict input validation).
pub(crate) struct BadBody {
    label: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    refusals: &'static [u16],
}

pub(crate) fn bad_bodies() -> Vec<BadBody> {
    const CLIENT_ERROR: &[u16] = &[400, 415, 422];
    let mut huge = b"{\"userName\":\"thangn\",\"password\":\"".to_vec();
    huge.resize(1024 * 1024 - 2, b'a');
    huge.extend_from_slice(b"\"}");
    let body = |label, content_type, body: &[u8], refusals| BadBody {
        label,
        content_type,
        body: body.to_vec(),
        refusals,
    };
    vec![
        body("empty", "application/json", b"", CLIENT_ERROR),
        body(
            "notJson",
            "application/json",
            b"userName=thangn&password=123456",
            CLIENT_ERROR,
        ),
        body(
            "truncatedJson",
            "application/json",
            b"{\"userName\": ",
            CLIENT_ERROR,
        ),
        body(
            "wrongTypes",
            "application/json",
            b"{\"userName\": {\"a\": 1}, \"password\": 123456}",
            CLIENT_ERROR,
        ),
        body("array", "application/json", b"[]", CLIENT_ERROR),
        BadBody {
            body: huge,
            ..body("oneMebibyte", "application/json", b"", &[400, 413])
        },
        body(
            "xml",
            "application/xml",
            b"<login><userName>thangn</userName></login>",
            &[400, 415],
        ),
        body(
            "textPlain",
            "text/plain",
            b"userName=thangn&password=123456",
            &[400, 415],
        ),
    ]
}

/// Sends one bad body; the status and the JSON body of the answer.
pub(crate) async fn send_bad_body(ctx: &Ctx, url: &str, bad: &BadBody) -> Result<(u16, Value)> {
    let response = ctx
        .http()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, bad.content_type)
        .body(bad.body.clone())
        .send()
        .await
        .with_context(|| format!("{}: POST {url} got no answer", bad.label))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the answer ({status}) is not JSON: {text:?}", bad.label))?;
    Ok((status, body))
}

/// Runs `check` on admin-srv's answer to every bad body, then proves admin-srv unharmed: a
/// valid login works and its pods neither changed nor restarted.
pub(crate) async fn each_bad_body(
    ctx: &Ctx,
    check: fn(&BadBody, u16, &Value) -> Result<()>,
) -> Result<Value> {
    let admin = &ctx.profile.services.admin;
    let before = identity(ctx, admin).await?;
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let mut observed = serde_json::Map::new();
    for bad in bad_bodies() {
        let (status, body) = send_bad_body(ctx, &url, &bad).await?;
        check(&bad, status, &body).with_context(|| bad.label)?;
        observed.insert(
            bad.label.into(),
            json!({ "status": status, "reason": body["reason"] }),
        );
    }
    http_login(ctx)
        .await
        .context("a valid login after the bad bodies failed")?;
    still_same_pods(ctx, admin, &before).await?;
    Ok(Value::Object(observed))
}

/// Core (§5): an answer in the error shape; a body that happens to read as the demo
/// credentials may log in instead.
pub(crate) fn answered(_: &BadBody, status: u16, body: &Value) -> Result<()> {
    if (200..300).contains(&status) {
        serde_json::from_value::<crate::login::LoginReply>(body.clone())
            .map(drop)
            .with_context(|| {
                format!("answered {status} with neither a login reply nor an error: {body}")
            })
    } else {
        check_error_shape(status, body)
    }
}

/// Strict input validation: refused with one of the body's 4xx statuses, in the error shape.
pub(crate) fn refused(bad: &BadBody, status: u16, body: &Value) -> Result<()> {
    if !bad.refusals.contains(&status) {
        bail!(
            "answered {status}, expected one of {:?}: {body}",
            bad.refusals
        );
    }
    check_error_shape(status, body)
}

/// Malformed LoginRequest messages sent as raw bytes.
pub(crate) fn malformed_messages() -> [(&'static str, Vec<u8>); 3] {
    [
        ("notProtobuf", b"this is not a protobuf".to_vec()),
        ("truncatedField", vec![0x0a, 0x10, b't']),
        ("wrongWireType", vec![0x08, 0x01, 0x10, 0x02]),
    ]
}

/// Runs `check` on admin-srv's answer (a reply or a status) to every malformed message, then
/// proves admin-srv unharmed.
pub(crate) async fn each_malformed_message(
    ctx: &Ctx,
    check: fn(&Result<Vec<u8>, tonic::Status>) -> Result<()>,
) -> Result<Value> {
    let admin = &ctx.profile.services.admin;
    let before = identity(ctx, admin).await?;
    let channel = ctx.grpc_channel(admin).await?;
    let demo = &ctx.profile.expectations.demo_user;
    let valid = LoginRequest {
        user_name: demo.user_name.clone(),
        password: demo.password.clone(),
    }
    .encode_to_vec();
    // Retried until answered within the step timeout: the case follows others that replaced
    // user-srv pods, and admin-srv may still be reconnecting to the new one (a gRPC channel backs
    // off after a refused connection); what is judged here is the malformed messages below.
    crate::wait::wait_until(
        ctx.profile.timeouts.step,
        "a well-formed LoginRequest sent as raw bytes to be answered",
        || {
            let (channel, valid) = (channel.clone(), valid.clone());
            async move { Ok(Some(raw_grpc::login(channel, valid).await?)) }
        },
    )
    .await
    .context("a well-formed LoginRequest sent as raw bytes failed; the raw path is broken")?;
    let mut observed = serde_json::Map::new();
    for (label, bytes) in malformed_messages() {
        let answer = raw_grpc::login(channel.clone(), bytes).await;
        check(&answer).with_context(|| label)?;
        let code = answer
            .as_ref()
            .err()
            .map_or(tonic::Code::Ok, tonic::Status::code);
        observed.insert(label.into(), json!({ "code": format!("{code:?}") }));
    }
    grpc_login(ctx)
        .await
        .context("a valid gRPC login after the malformed messages failed")?;
    still_same_pods(ctx, admin, &before).await?;
    Ok(Value::Object(observed))
}

/// Core (§5): any answer; a transport failure (no answer) fails.
pub(crate) fn message_answered(answer: &Result<Vec<u8>, tonic::Status>) -> Result<()> {
    match answer {
        Err(status) if status.code() == tonic::Code::Unavailable => {
            bail!("no answer: {status}")
        }
        _ => Ok(()),
    }
}

/// Strict input validation: refused as malformed, INVALID_ARGUMENT (or INTERNAL, the status
/// gRPC's own codec gives a message it cannot decode).
pub(crate) fn message_refused(answer: &Result<Vec<u8>, tonic::Status>) -> Result<()> {
    match answer {
        Ok(_) => bail!("a malformed LoginRequest was answered with success"),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Internal | tonic::Code::InvalidArgument
            ) =>
        {
            Ok(())
        }
        Err(status) => bail!(
            "the malformed message gave {:?} {:?}, expected INVALID_ARGUMENT or INTERNAL",
            status.code(),
            status.message()
        ),
    }
}
