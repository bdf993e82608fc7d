//! [`AdminOptions`]: who may use the admin API, and what it may do.

/// Who may use the admin API and what it may do. Built with [`AdminOptions::with_token`] (every
/// request must carry `Authorization: Bearer <token>`) or, explicitly,
/// [`AdminOptions::without_auth`].
#[derive(Clone)]
pub struct AdminOptions {
    pub(crate) token: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) allow_remote: bool,
    pub(crate) max_page: usize,
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("read_only", &self.read_only)
            .field("allow_remote", &self.allow_remote)
            .field("max_page", &self.max_page)
            .finish()
    }
}

impl AdminOptions {
    /// Every request must carry `Authorization: Bearer <token>`; the comparison takes the
    /// same time whatever the guess.
    pub fn with_token(token: impl Into<String>) -> Self {
        AdminOptions {
            token: Some(token.into()),
            read_only: false,
            allow_remote: false,
            max_page: 1_000,
        }
    }

    /// No authentication: anyone who reaches the address may read and operate. For a router
    /// the app mounts behind its own authentication.
    pub fn without_auth() -> Self {
        AdminOptions {
            token: None,
            ..AdminOptions::with_token("")
        }
    }

    /// Refuses every operation (`403`); reads only.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Lets [`Engine::serve_admin`](crate::Engine::serve_admin) bind an address other than
    /// loopback. Off by default.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// The largest page a list request may ask for. Default 1,000.
    pub fn max_page(mut self, n: usize) -> Self {
        self.max_page = n.max(1);
        self
    }
}
