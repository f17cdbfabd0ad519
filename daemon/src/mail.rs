//! Sending mail: the [`Mailer`] port, and SMTP through lettre on tokio as its adapter.
//! What a message says is decided elsewhere (codes, notices); this only delivers it,
//! within the configured timeout, over TLS unless the server is on this machine.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use twofold_config::{SmtpConfig, SmtpSecurity};

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One plain-text message to one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Failures say what went wrong, never a password or a message's body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("the [smtp] settings cannot be used: {0}")]
    Settings(String),
    #[error("the message is not valid: {0}")]
    Message(String),
    #[error("the mail server did not take the message: {0}")]
    Delivery(String),
}

pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

pub trait Mailer: Send + Sync {
    /// Delivers `mail` to the server, or fails within the configured timeout.
    fn send<'a>(&'a self, mail: &'a Mail) -> Sending<'a>;
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For the whole delivery: lettre's own timeout does not cover a server that accepts
    /// the connection and never greets.
    timeout: Duration,
}

impl SmtpMailer {
    /// Reads the password file and the extra certificates once, at start-up.
    pub fn new(c: &SmtpConfig) -> Result<SmtpMailer, MailError> {
        let settings = MailError::Settings;
        let from: Mailbox = c
            .from
            .0
            .parse()
            .map_err(|e| settings(format!("from: {e}")))?;
        let mut tls = TlsParameters::builder(c.host.0.clone());
        if let Some(ca) = &c.ca_file {
            for cert in certificates(&ca.0)? {
                tls = tls.add_root_certificate(cert);
            }
        }
        let tls = tls.build().map_err(|e| settings(format!("TLS: {e}")))?;
        let timeout = Duration::from_secs(u64::from(c.timeout_seconds.get()));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host.0)
            .port(c.port())
            .timeout(Some(timeout))
            .tls(match c.security {
                SmtpSecurity::Starttls => Tls::Required(tls),
                SmtpSecurity::Tls => Tls::Wrapper(tls),
                SmtpSecurity::None => Tls::None,
            });
        if let (Some(user), Some(file)) = (&c.username, &c.password_file) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                crate::credentials::read_password_file(&file.0).map_err(MailError::Settings)?,
            ));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            timeout,
        })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, mail: &'a Mail) -> Sending<'a> {
        Box::pin(async move {
            let to: Mailbox = mail
                .to
                .parse()
                .map_err(|e| MailError::Message(format!("to: {e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject.clone())
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body.clone())
                .map_err(|e| MailError::Message(e.to_string()))?;
            match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(MailError::Delivery(e.to_string())),
                Err(_) => Err(MailError::Delivery(format!(
                    "no answer within {} s",
                    self.timeout.as_secs()
                ))),
            }
        })
    }
}

/// The SMTP password: the file's first line. The file must not be readable by others.
/// Every certificate of a PEM file.
fn certificates(path: &std::path::Path) -> Result<Vec<Certificate>, MailError> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| MailError::Settings(format!("{shown}: {e}")))?;
    const END: &str = "-----END CERTIFICATE-----";
    let certs: Vec<Certificate> = text
        .split_inclusive(END)
        .filter(|block| block.contains(END))
        .map(|block| Certificate::from_pem(block.trim_start().as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| MailError::Settings(format!("{shown}: {e}")))?;
    if certs.is_empty() {
        return Err(MailError::Settings(format!(
            "{shown} holds no PEM certificate"
        )));
    }
    Ok(certs)
}
