//! Mail through a real SMTP server (aiosmtpd writing a Maildir).

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn culprit_mail_reaches_the_author_and_the_list_over_smtp() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(8, Some(4));
    up.push_staging();
    let smtp = Smtp::start(free_port(), &root.path().join("maildir"));
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let service = open_service(sandbox.config(&format!(
        "[mail]\nfrom = \"Gate <gate@example.org>\"\nsmtp = \"{}\"\n",
        smtp.url()
    )))
    .await;
    service.gate_once().await.unwrap();
    let report = service.deliver_mail().await.unwrap();
    assert_eq!((report.sent.len(), report.failed), (2, 0));

    let mails = eventually(10, "two mails in the Maildir", || {
        let m = smtp.messages();
        (m.len() == 2).then_some(m)
    });
    let culprit = mails
        .iter()
        .find(|m| m.subject.contains("your commit"))
        .unwrap();
    let author = AUTHORS[4 % AUTHORS.len()].1;
    assert!(culprit.to.iter().any(|a| a == author), "{:?}", culprit.to);
    assert!(
        culprit.to.iter().any(|a| a == "mia@example.org"),
        "the committer too"
    );
    assert_eq!(culprit.cc, vec!["devel@lists.example.org"]);
    // The envelope, as the server saw it, matches the headers.
    for who in [author, "mia@example.org", "devel@lists.example.org"] {
        assert!(
            culprit.rcpt.iter().any(|r| r == who),
            "{who} not in {:?}",
            culprit.rcpt
        );
    }
    assert!(
        culprit.subject.contains(&shas[3][..12]),
        "{}",
        culprit.subject
    );
    assert!(culprit.text.contains(&shas[3]));
    assert!(culprit.text.contains("BROKEN is here"));

    let gate_report = mails
        .iter()
        .find(|m| m.subject.contains("blocked"))
        .unwrap();
    assert_eq!(gate_report.to, vec!["devel@lists.example.org"]);
    assert!(gate_report.text.contains("Pushed:"), "{}", gate_report.text);

    // Nothing is sent twice.
    let again = service.deliver_mail().await.unwrap();
    assert!(again.sent.is_empty());
}

#[tokio::test]
async fn mail_waits_while_smtp_is_down_and_is_delivered_once_when_it_is_back() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commits(3, Some(2));
    up.push_staging();
    let port = free_port();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let mut service =
        open_service(sandbox.config(&format!("[mail]\nsmtp = \"smtp://127.0.0.1:{port}\"\n")))
            .await;
    // Retry at once in this test; in service the first retry waits 30 s.
    service.mail_retry_base = Duration::ZERO;
    service.gate_once().await.unwrap();

    let down = service.deliver_mail().await.unwrap();
    assert_eq!((down.sent.len(), down.failed), (0, 2));
    assert_eq!(service.store().unsent_mail_count().await.unwrap(), 2);
    let branch = &service.store().branches().await.unwrap()[0];
    let flight = &service.store().recent_flights(branch.id, 1).await.unwrap()[0];
    let waiting = service.store().mail_of_flight(flight.id).await.unwrap();
    assert!(waiting
        .iter()
        .all(|m| m.last_error.is_some() && m.sent_at.is_none()));

    let smtp = Smtp::start(port, &root.path().join("maildir"));
    let up_again = service.deliver_mail().await.unwrap();
    assert_eq!((up_again.sent.len(), up_again.failed), (2, 0));
    assert!(service.deliver_mail().await.unwrap().sent.is_empty());
    let mails = eventually(10, "two mails", || {
        let m = smtp.messages();
        (m.len() == 2).then_some(m)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.messages().len(), 2, "delivered exactly once");
    assert_ne!(mails[0].message_id, mails[1].message_id);
    assert_eq!(service.store().unsent_mail_count().await.unwrap(), 0);
}
