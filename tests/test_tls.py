"""TLS between counters and central, through the real processes on 127.0.0.1.

Central's certificate is made in the test (``onecard-central init --tls-self-signed``,
i.e. openssl); counters pin it or verify it by ``ca_file``; a wrong pin, a certificate of
another CA, TLS to a plain central and plain ws to a TLS central each end in a clear
last error and nothing synced; bad ``tls_cert``/``tls_key`` stop ``serve`` with one line.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.tlspin import parse_pin, pin_of
from tests.support.sync_cluster import (
    CENTRAL_CLI,
    EDGE_CLI,
    Central,
    Counter,
    central_trail,
    free_port,
    offline_work,
    run_cli,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def openssl_cert(directory: Path, name: str = "other") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that is not central's."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=other",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def https_get(central: Central, path: str, cafile: Path) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", central.port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_CLI, *args], capture_output=True, text=True, timeout=60)


def sync_log(c: Counter) -> str:
    return (c.dir / "sync.log").read_text(errors="replace")


def one_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def tls_central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    """One central serving wss:// with a certificate made by its own init."""
    central = Central.init(tmp_path_factory.mktemp("tls") / "central", tls=True)
    central.start()
    try:
        yield central
    finally:
        central.stop()
    assert "Traceback" not in (central.dir / "central.log").read_text()


def test_init_makes_a_certificate_whose_pin_openssl_agrees_with(tls_central: Central) -> None:
    cert, key = tls_central.tls_cert, tls_central.dir / "central-tls.key"
    assert key.stat().st_mode & 0o777 == 0o600
    fp = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint",
                         "-sha256"], capture_output=True, text=True, check=True).stdout
    assert parse_pin(fp) == tls_central.tls_pin
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert pin_of(der) == tls_central.tls_pin
    # a second init into the same directory refuses, and leaves the certificate as it was
    before = cert.read_bytes()
    r = run_cli("--config", str(tls_central.dir / "again.toml"), "init", "--dir",
                str(tls_central.dir), "--tls-self-signed")
    assert r.returncode != 0
    one_line(r.stderr)
    assert "refusing to overwrite" in r.stderr and cert.read_bytes() == before


def test_healthz_and_metrics_over_https(tls_central: Central) -> None:
    assert https_get(tls_central, "/healthz", tls_central.tls_cert) == (200, "ok\n")
    status, text = https_get(tls_central, "/metrics", tls_central.tls_cert)
    assert status == 200 and "onecard_cursor" in text
    # the port speaks TLS only: plain http gets no answer
    conn = http.client.HTTPConnection("127.0.0.1", tls_central.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    conn.close()


def test_pinned_counters_sync_both_ways_over_wss(tls_central: Central, tmp_path: Path) -> None:
    a = Counter.create(tmp_path, "cashier-41", tls_central, tls_pin=tls_central.tls_pin)
    # openssl's colon form of the same pin is accepted too
    colon = "sha256:" + ":".join(tls_central.tls_pin[7 + i:9 + i] for i in range(0, 64, 2))
    b = Counter.create(tmp_path, "cashier-42", tls_central, tls_pin=colon.upper())
    n_a = asyncio.run(offline_work(a, patients=3))
    n_b = asyncio.run(offline_work(b, patients=2))
    a.start_sync()
    b.start_sync()

    def mine(ids: set[tuple[str, int, bytes]]) -> set[tuple[str, int, bytes]]:
        return {i for i in ids if i[0] in (a.node, b.node)}

    try:
        # each counter's work reaches central and the other counter: both directions
        wait_for(lambda: len(mine(tls_central.event_ids())) == n_a + n_b
                 and mine(a.event_ids()) == mine(b.event_ids()) == mine(tls_central.event_ids()),
                 60, "sync both ways over wss")
        st = a.sync_state()
        assert st["online"] == 1 and st["last_error"] == ""
        info = edge("--config", str(a.config), "info")
        assert info.returncode == 0
        assert f"wss://127.0.0.1:{tls_central.port}/sync  (TLS, certificate pinned " \
               f"{tls_central.tls_pin})" in info.stdout
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in sync_log(a) + sync_log(b)


def test_ca_file_pointing_at_the_certificate_works(tls_central: Central, tmp_path: Path) -> None:
    c = Counter.create(tmp_path, "cashier-43", tls_central, ca_file=str(tls_central.tls_cert))
    n = asyncio.run(offline_work(c, patients=1))
    c.start_sync()
    try:
        def own(ids: set[tuple[str, int, bytes]]) -> set[tuple[str, int, bytes]]:
            return {i for i in ids if i[0] == c.node}

        wait_for(lambda: c.sync_state()["acked_seq"] == n
                 and own(tls_central.event_ids()) == own(c.event_ids()), 60,
                 "a push verified by ca_file")
        assert c.sync_state()["last_error"] == ""
    finally:
        c.stop()


def test_a_wrong_pin_is_refused_with_a_clear_last_error(tls_central: Central,
                                                        tmp_path: Path) -> None:
    zh = Counter.create(tmp_path, "cashier-44", tls_central, tls_pin="sha256:" + "ab" * 32)
    en = Counter.create(tmp_path, "cashier-45", tls_central, tls_pin="sha256:" + "cd" * 32,
                        language="en")
    for c in (zh, en):
        asyncio.run(offline_work(c, patients=1))
        c.start_sync()
    try:
        wait_for(lambda: "tls_pin" in en.sync_state()["last_error"]
                 and "tls_pin" in zh.sync_state()["last_error"], 30, "the pin refusal")
        err = str(en.sync_state()["last_error"])
        assert "not the pinned one" in err and tls_central.tls_pin in err
        assert "sha256:" + "cd" * 32 in err
        assert "固定" in str(zh.sync_state()["last_error"])
        info = edge("--config", str(en.config), "info")
        assert info.returncode == 0 and "not the pinned one" in info.stdout
    finally:
        zh.stop()
        en.stop()
    for c in (zh, en):
        assert c.sync_state()["online"] == 0 and c.sync_state()["acked_seq"] == 0
        assert "Traceback" not in sync_log(c)
    assert not {i for i in tls_central.event_ids() if i[0] in (zh.node, en.node)}


def test_the_right_certificate_with_a_wrong_central_key_is_still_refused(
        tls_central: Central, tmp_path: Path) -> None:
    """TLS comes on top of the signed handshake, not instead of it."""
    from protocol.crypto import SigningKey

    c = Counter.create(tmp_path, "cashier-48", tls_central, tls_pin=tls_central.tls_pin)
    impostor = SigningKey(b"i" * 32).public_key.hex()
    c.config.write_text(c.config.read_text().replace(tls_central.key_hex, impostor))
    asyncio.run(offline_work(c, patients=1))
    c.start_sync()
    try:
        wait_for(lambda: c.sync_state()["last_error"] != "", 30, "the handshake refusal")
        err = str(c.sync_state()["last_error"])
        assert "AuthError" in err and "TLS" not in err, err  # the handshake, not TLS
        assert c.sync_state()["acked_seq"] == 0
    finally:
        c.stop()
    assert not {i for i in tls_central.event_ids() if i[0] == c.node}
    assert "Traceback" not in sync_log(c)


def test_a_certificate_another_ca_signed_is_not_trusted(tls_central: Central,
                                                        tmp_path: Path) -> None:
    other, _ = openssl_cert(tmp_path)
    c = Counter.create(tmp_path, "cashier-46", tls_central, ca_file=str(other), language="en")
    c.start_sync()
    try:
        wait_for(lambda: "not trusted" in c.sync_state()["last_error"], 30, "the refusal")
        assert "ca_file" in c.sync_state()["last_error"]
    finally:
        c.stop()
    assert "Traceback" not in sync_log(c)


def test_plain_ws_to_the_tls_central_says_it_may_serve_wss(tls_central: Central,
                                                          tmp_path: Path) -> None:
    c = Counter.create(tmp_path, "cashier-47", tls_central, language="en",
                       url=f"ws://127.0.0.1:{tls_central.port}/sync")
    c.start_sync()
    try:
        wait_for(lambda: "wss://" in c.sync_state()["last_error"], 30, "the plain-ws error")
    finally:
        c.stop()
    assert "Traceback" not in sync_log(c)


def test_plain_ws_still_works_and_tls_to_it_fails_cleanly(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    ok = Counter.create(tmp_path, "cashier-51", central)
    tls = Counter.create(tmp_path, "cashier-52", central, language="en",
                         url=central.url.replace("ws://", "wss://"),
                         tls_pin="sha256:" + "ab" * 32)
    n = asyncio.run(offline_work(ok, patients=1))
    central.start()
    ok.start_sync()
    tls.start_sync()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", central.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
        conn.close()
        wait_for(lambda: len(central.event_ids()) == n + central_trail(central)
                 and ok.sync_state()["acked_seq"] == n, 60, "plain ws sync")
        wait_for(lambda: "TLS with central failed" in tls.sync_state()["last_error"], 30,
                 "the TLS failure")
        assert "does central serve wss://" in tls.sync_state()["last_error"]
    finally:
        ok.stop()
        tls.stop()
        central.stop()
    assert "Traceback" not in sync_log(tls)


def test_the_readme_deployment_works_over_wss(tmp_path: Path) -> None:
    """README's commands (paths and the listen address moved for a test): central's init
    with --host 0.0.0.0 --tls-self-signed, a counter's init with wss:// and --tls-pin, enrol,
    sync."""
    from edge_node import config as cfgmod

    etc, var = tmp_path / "etc", tmp_path / "var"
    r = run_cli("--config", str(etc / "central.toml"), "init", "--dir", str(var), "--host",
                "0.0.0.0", "--tls-self-signed", "--tls-name", "central.hospital.lan")
    assert r.returncode == 0, r.stderr
    text = (etc / "central.toml").read_text()
    assert 'host = "0.0.0.0"' in text and f'tls_cert = "{var / "central-tls.crt"}"' in text
    key_hex = next(x.split()[-1] for x in r.stdout.splitlines() if x.startswith("central key"))
    pin = next(x.split()[-1] for x in r.stdout.splitlines() if x.startswith("tls pin"))
    central = Central(var, etc / "central.toml", key_hex, free_port(), tls_pin=pin)
    edge_cfg = tmp_path / "edge" / "edge.toml"
    r = edge("--config", str(edge_cfg), "init", "cashier-71", "--role", "cashier",
             "--data-dir", str(tmp_path / "edge"), "--central-url", central.url,
             "--central-key", key_hex, "--tls-pin", pin)
    assert r.returncode == 0, r.stderr
    pub = next(x.split()[-1] for x in r.stdout.splitlines() if x.startswith("public key"))
    assert run_cli("--config", str(central.config), "enrol", "cashier-71", "--key", pub,
                   "--role", "cashier").returncode == 0
    cfg = cfgmod.load(edge_cfg)
    assert cfg.sync.tls_pin == pin and cfg.sync.central_url.startswith("wss://")
    c = Counter("cashier-71", tmp_path / "edge", edge_cfg, cfg.load_key())
    n = asyncio.run(offline_work(c, patients=1))
    central.start()  # serve --host 127.0.0.1: the tests listen on loopback only
    c.start_sync()
    try:
        wait_for(lambda: c.sync_state()["acked_seq"] == n, 60, "the README counter's push")
        assert c.sync_state()["last_error"] == ""
    finally:
        c.stop()
        central.stop()


# ------------------------------------------------------------------ bad configuration


@pytest.fixture
def plain_central(tmp_path: Path) -> Central:
    return Central.init(tmp_path / "central")


def serve_with(central: Central, **keys: str) -> subprocess.CompletedProcess[str]:
    text = central.config.read_text()
    for k, v in keys.items():  # init wrote `tls_cert = ""` and `tls_key = ""`
        assert f'\n{k} = ""' in text
        text = text.replace(f'\n{k} = ""', f'\n{k} = "{v}"')
    central.config.write_text(text)
    return subprocess.run([CENTRAL_CLI, "--config", str(central.config), "serve", "--port",
                           "0"], capture_output=True, text=True, timeout=60)


def test_cert_without_key_is_one_line_and_exit_2(plain_central: Central,
                                                 tmp_path: Path) -> None:
    cert, _ = openssl_cert(tmp_path)
    r = serve_with(plain_central, tls_cert=str(cert))
    assert r.returncode == 2 and "tls_cert is set but tls_key is not" in r.stderr
    one_line(r.stderr)


@pytest.mark.parametrize("case", ["missing cert", "unreadable key", "key of another cert",
                                  "not a certificate", "not a key", "encrypted key"])
def test_bad_certificate_or_key_is_one_line_and_exit_2(plain_central: Central,
                                                       tmp_path: Path, case: str) -> None:
    cert, key = openssl_cert(tmp_path, "good")
    other_cert, other_key = openssl_cert(tmp_path, "other")
    want = {
        "missing cert": "no such file",
        "unreadable key": "cannot read it",
        "key of another cert": "does not belong to the certificate",
        "not a certificate": "not a PEM certificate",
        "not a key": "not a PEM private key",
        "encrypted key": "passphrase",
    }[case]
    if case == "missing cert":
        cert = tmp_path / "nowhere.crt"
    elif case == "unreadable key":  # a directory: unreadable even for root (CI runs as root)
        key = tmp_path / "keydir"
        key.mkdir()
    elif case == "key of another cert":
        key = other_key
    elif case == "not a certificate":
        cert = key
    elif case == "not a key":
        key = other_cert
    elif case == "encrypted key":
        key = tmp_path / "locked.key"
        subprocess.run(["openssl", "pkey", "-in", str(other_key.with_name("good.key")),
                        "-aes256", "-passout", "pass:secret", "-out", str(key)],
                       check=True, capture_output=True, timeout=60)
    r = serve_with(plain_central, tls_cert=str(cert), tls_key=str(key))
    assert r.returncode == 2, r.stderr
    assert want in r.stderr
    one_line(r.stderr)


def test_counter_tls_settings_are_checked(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    c = Counter.create(tmp_path, "cashier-61", central)
    text = c.config.read_text()
    # a malformed pin: every command says so in one line
    c.config.write_text(text.replace('tls_pin = ""', 'tls_pin = "md5:abc"'))
    r = edge("--config", str(c.config), "info")
    assert r.returncode == 1 and "[sync] tls_pin" in r.stderr
    one_line(r.stderr)
    # a pin with a ws:// URL: a config error, not silently ignored
    c.config.write_text(text.replace('tls_pin = ""', f'tls_pin = "sha256:{"ab" * 32}"'))
    r = edge("--config", str(c.config), "info")
    assert r.returncode == 1 and "need central_url = \"wss://" in r.stderr
    one_line(r.stderr)
    # a ca_file that is not there: the sync daemon stops with one line and records it
    c.config.write_text(text.replace('ca_file = ""', 'ca_file = "hospital-ca.pem"').replace(
        "ws://", "wss://"))
    r = subprocess.run([EDGE_CLI, "--config", str(c.config), "sync"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "ONECARD_SYNC_BACKOFF_MAX_S": "1"})
    assert r.returncode == 1 and "hospital-ca.pem: no such file" in r.stderr
    assert "Traceback" not in r.stderr
    assert "hospital-ca.pem" in str(c.sync_state()["last_error"])


def test_parse_pin_forms() -> None:
    digest = "0123456789abcdef" * 4
    assert parse_pin(f"sha256:{digest}") == f"sha256:{digest}"
    assert parse_pin(f"SHA256:{digest.upper()}") == f"sha256:{digest}"
    colon = ":".join(digest[i:i + 2] for i in range(0, 64, 2)).upper()
    assert parse_pin(f"sha256 Fingerprint={colon}\n") == f"sha256:{digest}"
    for bad in ("", digest, f"sha1:{digest}", f"sha256:{digest[:-1]}", f"sha256:{digest}00"):
        with pytest.raises(ValueError):
            parse_pin(bad)


def test_init_tls_mistakes_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    # a name that cannot go in a certificate
    r = run_cli("--config", str(tmp_path / "a" / "central.toml"), "init", "--tls-self-signed",
                "--tls-name", "bad name,DNS:evil")
    assert r.returncode == 2 and "--tls-name" in r.stderr
    one_line(r.stderr)
    assert not (tmp_path / "a").exists()
    # no openssl command on PATH: said plainly, no half-made certificate left behind
    r = subprocess.run([CENTRAL_CLI, "--config", str(tmp_path / "b" / "central.toml"), "init",
                        "--tls-self-signed"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PATH": str(tmp_path / "empty")})
    assert r.returncode == 2 and "needs the openssl command" in r.stderr
    one_line(r.stderr)
    assert not list((tmp_path / "b").glob("central-tls.*"))
    assert not (tmp_path / "b" / "central.toml").exists()


@pytest.mark.parametrize("line, want", [
    ("tls_cert = 5", "tls_cert must be a path string"),
    ('tls_key = "k.pem"', "tls_key is set but tls_cert is not"),
])
def test_central_tls_keys_are_checked_when_the_config_loads(tmp_path: Path, line: str,
                                                            want: str) -> None:
    from central.config import CentralConfig, CentralConfigError

    path = tmp_path / "central.toml"
    path.write_text(f"[central]\n{line}\n")
    with pytest.raises(CentralConfigError, match=want):
        CentralConfig.load(path)
