//! The answer to a mailed series, in its thread: to the sender, Cc the list, `In-Reply-To`
//! the cover letter (or patch 1), `References` carrying the thread, `Re:` its subject, so
//! that every mail client and lore file it under the series.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};

use super::envelope::seal;
use super::ReportError;
use crate::intake::mail::Mail;
use crate::store::NewMail;
use crate::templates::render;

/// What came of a series revision.
#[derive(Clone, Debug)]
pub enum SeriesOutcome {
    /// A patch did not apply on the base: not tested.
    DoesNotApply {
        /// `[PATCH v2 3/5] title`
        patch: String,
        file: Option<String>,
        reason: String,
    },
    /// Every sequence passed on the series tip.
    Passed { sequences: Vec<String> },
    /// A sequence failed; the culprit patch when the finder named one.
    Failed {
        culprit: Option<String>,
        /// What went wrong, as a sentence's end: `smoke/boot failed`, `smoke/boot timed out`.
        step: String,
        log_excerpt: Vec<String>,
    },
    /// Patches still missing after the wait.
    Incomplete { missing: Vec<u32>, total: u32 },
    /// Tested, but the result does not judge the series (it fails on the base as well, or
    /// the results were too flaky, or the test itself broke); says why.
    NotJudged { verdict: String, reason: String },
}

/// What the reply needs.
pub struct SeriesReply<'a> {
    /// pushgate's own address.
    pub from: &'a str,
    /// The list's address, for Cc.
    pub list: &'a str,
    /// The mail answered: the cover letter, else patch 1.
    pub answering: &'a Mail,
    /// `master at 1a2b3c4d` or `base-commit 1a2b3c4d`.
    pub base: &'a str,
    pub outcome: SeriesOutcome,
    /// A page with the flight, when there is one.
    pub link: Option<String>,
}

impl SeriesOutcome {
    fn kind(&self) -> &'static str {
        match self {
            SeriesOutcome::DoesNotApply { .. } => "apply",
            SeriesOutcome::Passed { .. } => "pass",
            SeriesOutcome::Failed { .. } => "fail",
            SeriesOutcome::Incomplete { .. } => "missing",
            SeriesOutcome::NotJudged { .. } => "unjudged",
        }
    }
}

/// Composes the reply. Its Message-ID is fixed by the answered mail and the outcome, so the
/// same reply composed twice is sent once.
pub fn compose_series_reply(r: &SeriesReply<'_>) -> Result<NewMail, ReportError> {
    let from: Mailbox = r
        .from
        .parse()
        .map_err(|e| ReportError::Mail(format!("sender `{}`: {e}", r.from)))?;
    let list: Mailbox = r
        .list
        .parse()
        .map_err(|e| ReportError::Mail(format!("list address `{}`: {e}", r.list)))?;
    let sender = &r.answering.sender;
    let to = sender.email.parse().ok().map(|address| {
        Mailbox::new(
            (!sender.name.is_empty()).then(|| sender.name.clone()),
            address,
        )
    });
    let original = &r.answering.subject_line;
    let subject = if original.to_ascii_lowercase().starts_with("re:") {
        original.clone()
    } else {
        format!("Re: {original}")
    };
    let answered = format!("<{}>", r.answering.message_id);
    let mut references: Vec<String> = r
        .answering
        .references
        .iter()
        .map(|id| format!("<{id}>"))
        .collect();
    if !references.contains(&answered) {
        references.push(answered.clone());
    }
    let message_id = format!(
        "<pushgate.series.{}.{}@{}>",
        crate::digest::short_digest(r.answering.message_id.as_bytes(), 8),
        r.outcome.kind(),
        from.email.domain()
    );
    let mut builder = Message::builder()
        .from(from)
        .subject(subject.clone())
        .message_id(Some(message_id.clone()))
        .in_reply_to(answered)
        .references(references.join(" "))
        .header(ContentType::TEXT_PLAIN);
    match to {
        Some(to) => {
            let same = to.email == list.email;
            builder = builder.to(to);
            if !same {
                builder = builder.cc(list);
            }
        }
        None => builder = builder.to(list),
    }
    seal(builder, body(r)?, "series", message_id, &subject)
}

/// The reply's text, from `templates/series-reply.txt`.
fn body(r: &SeriesReply<'_>) -> Result<String, ReportError> {
    let address = r
        .from
        .rsplit_once('<')
        .map_or(r.from, |(_, a)| a.trim_end_matches('>'));
    let common = minijinja::context! {
        sender => &r.answering.sender.name,
        outcome => r.outcome.kind(),
        base => r.base,
        link => &r.link,
    };
    let particular = match &r.outcome {
        SeriesOutcome::DoesNotApply {
            patch,
            file,
            reason,
        } => minijinja::context! { patch, file, reason },
        SeriesOutcome::Passed { sequences } => minijinja::context! { sequences, address },
        SeriesOutcome::Failed {
            culprit,
            step,
            log_excerpt,
        } => minijinja::context! { culprit, step, log_excerpt },
        SeriesOutcome::Incomplete { missing, total } => minijinja::context! {
            missing => missing.iter().map(|n| format!("{n}/{total}")).collect::<Vec<_>>(),
        },
        SeriesOutcome::NotJudged { verdict, reason } => minijinja::context! { verdict, reason },
    };
    Ok(render(
        "series-reply.txt",
        minijinja::context! { ..common, ..particular },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cover() -> Mail {
        Mail::parse(
            b"From: Ann Author <ann@example.org>\nTo: xen-devel@lists.example.org\n\
              Subject: [PATCH v2 0/3] x86: the series\nMessage-ID: <c@example.org>\n\
              In-Reply-To: <v1@example.org>\nReferences: <v1@example.org>\n\nwhy\n",
        )
        .unwrap()
    }

    #[test]
    fn threading_headers_and_recipients() {
        let answering = cover();
        let mail = compose_series_reply(&SeriesReply {
            from: "pushgate <pushgate@example.org>",
            list: "xen-devel@lists.example.org",
            answering: &answering,
            base: "master at 1a2b3c4d",
            outcome: SeriesOutcome::DoesNotApply {
                patch: "[PATCH v2 2/3] two".into(),
                file: Some("xen/arch/x86/mm.c".into()),
                reason: "hunk at line 3 did not apply".into(),
            },
            link: None,
        })
        .unwrap();
        let parsed = Mail::parse(mail.message.as_bytes()).unwrap();
        assert_eq!(parsed.in_reply_to.as_deref(), Some("c@example.org"));
        assert_eq!(parsed.references, ["v1@example.org", "c@example.org"]);
        assert_eq!(parsed.subject_line, "Re: [PATCH v2 0/3] x86: the series");
        assert!(parsed.subject.reply);
        assert_eq!(
            mail.recipients,
            ["ann@example.org", "xen-devel@lists.example.org"]
        );
        assert!(mail.message.contains("Cc: xen-devel@lists.example.org"));
        assert!(parsed
            .message
            .contains("does not apply on master at 1a2b3c4d"));
        assert!(parsed.message.contains("fails on xen/arch/x86/mm.c"));
        // Stable: the same reply has the same id.
        let again = compose_series_reply(&SeriesReply {
            from: "pushgate <pushgate@example.org>",
            list: "xen-devel@lists.example.org",
            answering: &answering,
            base: "master at 1a2b3c4d",
            outcome: SeriesOutcome::Passed {
                sequences: vec!["smoke".into()],
            },
            link: Some("http://gate/flights/3".into()),
        })
        .unwrap();
        assert_ne!(
            again.message_id, mail.message_id,
            "another outcome, another mail"
        );
        assert!(again
            .message
            .contains("Tested-by: pushgate <pushgate@example.org>"));
    }

    #[test]
    fn a_bad_sender_is_an_error_naming_it() {
        let answering = cover();
        let err = compose_series_reply(&SeriesReply {
            from: "not an address",
            list: "xen-devel@lists.example.org",
            answering: &answering,
            base: "master",
            outcome: SeriesOutcome::Incomplete {
                missing: vec![2],
                total: 3,
            },
            link: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
    }

    fn body_of(outcome: SeriesOutcome) -> String {
        let answering = cover();
        let mail = compose_series_reply(&SeriesReply {
            from: "pushgate <pushgate@example.org>",
            list: "xen-devel@lists.example.org",
            answering: &answering,
            base: "base-commit 1a2b3c4d",
            outcome,
            link: None,
        })
        .unwrap();
        Mail::parse(mail.message.as_bytes()).unwrap().message
    }

    #[test]
    fn a_failure_names_the_patch_the_step_and_the_log() {
        let body = body_of(SeriesOutcome::Failed {
            culprit: Some("[PATCH v2 3/3] x86: three".into()),
            step: "smoke/boot timed out".into(),
            log_excerpt: vec!["(XEN) panic".into()],
        });
        assert!(
            body.contains("applied on base-commit 1a2b3c4d but smoke/boot timed out.\n"),
            "{body}"
        );
        assert!(
            body.contains("fails it:\n\n  [PATCH v2 3/3] x86: three\n"),
            "{body}"
        );
        assert!(body.contains("  (XEN) panic\n"), "{body}");
        let body = body_of(SeriesOutcome::Failed {
            culprit: None,
            step: "smoke/boot failed".into(),
            log_excerpt: Vec::new(),
        });
        assert!(body.contains("No single patch could be named."), "{body}");
        assert!(!body.contains("end of the log"), "{body}");
    }

    #[test]
    fn an_unjudged_result_says_why() {
        let body = body_of(SeriesOutcome::NotJudged {
            verdict: "like-baseline".into(),
            reason: "smoke/boot fails on the base as well".into(),
        });
        assert!(body.contains("does not judge it (like-baseline)"), "{body}");
        assert!(
            body.contains("  smoke/boot fails on the base as well"),
            "{body}"
        );
    }
}
