"""Team mode under AppTest, as tests/test_access.py and tests/test_jobs_page.py run it: `[auth]` secrets that are
never used to reach a provider, and a seeded `st.user` for whoever is signed in. The real OpenID Connect flow in
a browser is tests/test_signin.py.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret",
    "client_id": "daam-store",
    "client_secret": "test-client-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",  # never reached by AppTest
}


def signed_in(email: str) -> dict:
    """`st.user` for someone signed in with a verified `email`."""
    return {"is_logged_in": True, "email": email, "email_verified": True, "sub": email.split("@")[0]}


def dashboard_app(user: dict | None = None, page: str | None = None, timeout: float = 60) -> AppTest:
    """The dashboard (dashboard/Home.py) run once, then switched to `page` (relative to dashboard/) and run again
    when given; in team mode as `user` (an `st.user` dict, such as `signed_in(...)` or `{"is_logged_in": False}`),
    else in local single-user mode. Fails on an exception shown."""
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=timeout)
    if user is not None:
        app.secrets["auth"] = AUTH
        app.user = user
    app.run()
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app
