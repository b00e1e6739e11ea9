"""Real peers for tests: a SendGrid v3 stand-in (HTTP) and an SMTP server (aiosmtpd)."""
