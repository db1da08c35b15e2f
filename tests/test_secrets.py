"""A database password never shows, whatever form the URL gives it in (issue 14, "Secrets")."""

import pytest

from daam_store.cli import store_main
from daam_store.store import StoreError, open_store
from daam_store.store.session import display_url, parse_database_url

SECRET = "S3cretPw"
# Port 1 on the loopback refuses at once, so each command fails fast at connecting.
URLS = [
    f"postgresql://alice:{SECRET}@127.0.0.1:1/db",
    f"postgresql://alice@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://alice@127.0.0.1:1/db?sslmode=disable&sslpassword={SECRET}",
    f"postgresql:/alice:{SECRET}@127.0.0.1:1/db",  # one slash short: does not parse
    f"postgresql://alice:{SECRET}@127.0.0.1:port/db",  # a port that is not a number
    f"postgresql://alice:S3@{SECRET}@127.0.0.1:1/db",  # an unescaped @ in the password: its tail reads as host
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", [["db", "check"], ["ls"], ["db", "upgrade"]])
def test_cli_messages_never_show_the_password(url, command, capsys):
    assert store_main([*command, "--db", url]) != 0
    captured = capsys.readouterr()
    assert "error:" in captured.err
    assert SECRET not in captured.out + captured.err


@pytest.mark.parametrize("url", URLS)
def test_open_store_errors_never_show_the_password(url):
    with pytest.raises(StoreError) as raised:
        open_store(url)
    assert SECRET not in str(raised.value)


def test_a_malformed_url_is_called_malformed_and_the_expected_form_given():
    with pytest.raises(StoreError, match=r"malformed .* postgresql://user"):
        parse_database_url(URLS[3])


@pytest.mark.parametrize("url", URLS[:3])
def test_display_url_hides_passwords_and_keeps_the_rest(url):
    shown = display_url(parse_database_url(url))
    assert SECRET not in shown
    assert shown.startswith("postgresql+psycopg://alice") and "127.0.0.1:1/db" in shown
