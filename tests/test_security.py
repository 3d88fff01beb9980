"""Security: redirects are never followed, plain http and odd base URLs are refused, TLS is
verified, and the token never shows.

The token is a canary that must never show: not in any exception (``str``, ``repr``,
attributes, arguments, a pickle, the formatted chain with ``__cause__``/``__context__``, nor the
locals of the package's frames in its traceback, which error reporters capture), not in the
client's repr or attributes, not in a log record at DEBUG, not in progress output, not in the
command line's output and not in an export file. Header values that could inject a header are
refused in ``test_input_safety.py``.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import shutil
import ssl
import subprocess
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from unpod_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BusinessLogicError,
    DeadlineExceededError,
    ExportProgress,
    RateLimitError,
    RedirectError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    UnpodClient,
    UnpodError,
)
from unpod_async._progress import Board, log_line
from unpod_async.testing import Fault, serve

from .helpers import (
    FAST,
    ORG,
    SPACE,
    TOKEN,
    MiniServer,
    client_for,
    exception_chain,
    free_port,
    http,
    reset,
    run_python,
    send,
    short_body,
    stall,
)

CANARY = "cAnArY-7f3e9d2b41-SECRET"
TESTS_DIR = str(Path(__file__).parent)


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
async def test_a_redirect_is_never_followed_and_names_the_target_host(status: int) -> None:
    async with MiniServer() as other, MiniServer() as api:
        target = f"http://localhost:{other.port}/api/v2/platform/spaces/{SPACE}/tasks/?page=1"
        api.on(send(http(status, headers={"Location": target}), close=False), times=1000)
        async with client_for(api.url, max_retries=3) as client:
            with pytest.raises(RedirectError) as info:
                await client.get_tasks(SPACE)
    error = info.value
    assert error.status_code == status
    assert error.location == target
    assert "redirected to localhost" in str(error)
    assert len(api.requests) == 1  # a redirect is final: not retried
    assert other.connections == 0


async def test_credentials_never_reach_the_redirect_target() -> None:
    """Two servers: the API redirects to another host. That host sees no token, no Org-Handle:
    it sees nothing at all, with the client's own session or with one the caller passed."""
    async with MiniServer() as other, MiniServer() as api:
        target = f"http://localhost:{other.port}/steal"
        api.on(send(http(307, headers={"Location": target}), close=False), times=1000)
        async with client_for(api.url) as client:
            with pytest.raises(RedirectError):
                await client.get_tasks(SPACE)
        async with (
            aiohttp.ClientSession() as session,
            client_for(api.url, session=session) as client,
        ):
            with pytest.raises(RedirectError):
                await client.get_all_tasks(SPACE)
        heads = b"".join(r.head for r in api.requests)
    assert b"Authorization: Token " + TOKEN.encode() in heads  # the API host did get them
    assert b"Org-Handle: " + ORG.encode() in heads
    assert other.connections == 0
    assert other.requests == []


async def test_a_relative_or_missing_location_is_still_a_redirect_error() -> None:
    async with MiniServer() as api:
        api.on(send(http(302, headers={"Location": "/elsewhere"}), close=False))
        api.on(send(http(301), close=False))
        async with client_for(api.url) as client:
            for _ in range(2):
                with pytest.raises(RedirectError):
                    await client.get_tasks(SPACE)


# --------------------------------------------------------------------------- transport


@pytest.mark.parametrize(
    "url",
    [
        "http://unpod.ai",
        "http://10.0.0.5:8080",
        "http://0.0.0.0:8000",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://[2001:db8::1]",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="refusing plain http"):
        UnpodClient(TOKEN, base_url=url)
    assert UnpodClient(TOKEN, base_url=url, allow_insecure_http=True).base_url == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:9", "https://unpod.ai"]
)
def test_plain_http_to_loopback_and_https_anywhere_are_allowed(url: str) -> None:
    assert UnpodClient(TOKEN, base_url=url).base_url == url


def test_plain_http_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNPOD_BASE_URL", "http://unpod.ai")
    with pytest.raises(ValueError, match="refusing plain http"):
        UnpodClient(TOKEN)


@pytest.mark.parametrize(
    "url",
    ["ftp://unpod.ai", "https://user:pw@unpod.ai", "https://unpod.ai/?x=1", "unpod.ai", "https://"],
)
def test_odd_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        UnpodClient(TOKEN, base_url=url)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made now."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _make_cert_with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("needs the cryptography package or the openssl command")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


def _make_cert_with_cryptography(cert: Path, key: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


async def test_tls_certificates_are_verified_by_default(tls_files: tuple[Path, Path]) -> None:
    async with MiniServer(tls=server_tls(tls_files)) as server:
        async with client_for(server.url, max_retries=0, token=CANARY) as client:
            with pytest.raises(APIConnectionError, match="certificate") as info:
                await client.get_tasks(SPACE)
        assert server.requests == []  # the handshake failed: no request, no token, was sent
        assert_clean(info.value)
        # Control: trusting this certificate, the very same server answers.
        trust = ssl.create_default_context(cafile=str(tls_files[0]))
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session,
            client_for(server.url, session=session, max_retries=0) as client,
        ):
            assert len((await client.get_tasks(SPACE)).data) == 20


# --------------------------------------------------------------------------- the canary


def shown(value: object) -> Iterator[str]:
    """What ``repr`` and ``str`` show of ``value`` (nothing, if its repr raises)."""
    try:
        text = repr(value)
    except Exception:
        return
    yield text
    yield str(value)


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything an exception and its whole chain show: str, repr, attributes, traceback."""
    for error in exception_chain(exc):
        yield str(error)
        yield repr(error)
        yield repr(getattr(error, "__dict__", {}))
        yield repr(error.args)
        for value in (*error.args, *vars(error).values()):
            yield from shown(value)
        yield "".join(traceback.format_exception(error))


def package_locals(exc: BaseException) -> Iterator[str]:
    """Every local of every non-test frame in the tracebacks of ``exc`` and its chain: what
    Sentry, ``rich.traceback(show_locals=True)`` or ``pytest --showlocals`` would print."""
    summary = traceback.TracebackException.from_exception(exc, capture_locals=True)
    for frame in summary.stack:
        if frame.filename.startswith(TESTS_DIR):
            continue
        for name, value in (frame.locals or {}).items():
            yield f"{frame.filename}:{frame.name}: {name} = {value}"
    for error in exception_chain(exc):
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if not code.co_filename.startswith(TESTS_DIR):
                for name, value in tb.tb_frame.f_locals.items():
                    for text in shown(value):
                        yield f"{code.co_filename}:{code.co_name}: {name} = {text}"
            tb = tb.tb_next


def assert_clean(exc: BaseException) -> None:
    for text in exception_texts(exc):
        assert CANARY not in text, text
    assert CANARY.encode() not in pickle.dumps(exc)


async def raised(make: Callable[[], Awaitable[object]]) -> BaseException:
    try:
        await make()
    except Exception as exc:
        return exc
    raise AssertionError("expected an error")


def canary_client(url: str, **kwargs: Any) -> UnpodClient:
    return UnpodClient(CANARY, ORG, base_url=url, **{**FAST, "max_retries": 1, **kwargs})


async def _wrong_token() -> BaseException:
    async with (
        serve(tasks=50, token=TOKEN, space_token=SPACE) as sim,
        canary_client(sim.base_url) as client,
    ):
        return await raised(lambda: client.get_tasks(SPACE))


async def _simulated(fault: Fault, **kwargs: Any) -> BaseException:
    """A pull from the simulator, where the canary is the valid token, failing with ``fault``."""
    async with (
        serve(tasks=50, token=CANARY, org_handle=ORG, space_token=SPACE) as sim,
        canary_client(sim.base_url, **kwargs) as client,
    ):
        sim.faults.append(fault)
        return await raised(lambda: client.get_all_tasks(SPACE))


async def _refused() -> BaseException:
    async with canary_client(f"http://127.0.0.1:{free_port()}") as client:
        return await raised(lambda: client.get_tasks(SPACE))


async def _with(responder: Any, **kwargs: Any) -> BaseException:
    async with MiniServer() as server:
        server.on(responder, times=1000)
        async with canary_client(server.url, **kwargs) as client:
            return await raised(lambda: client.get_all_tasks(SPACE, page_size=50))


async def _deadline() -> BaseException:
    async with MiniServer() as server:
        server.on(stall(30), times=1000)
        async with canary_client(server.url) as client:
            return await raised(lambda: client.get_all_tasks(SPACE, deadline=0.2))


Scenario = Callable[[], Awaitable[BaseException]]

# name -> (how to provoke the failure, the error it must be)
SCENARIOS: dict[str, tuple[Scenario, type[UnpodError]]] = {
    "wrong-token-401": (_wrong_token, AuthenticationError),
    "connection-refused": (_refused, APIConnectionError),
    "reset": (lambda: _with(reset()), APIConnectionError),
    "short-body": (lambda: _with(short_body()), APIConnectionError),
    "timeout": (lambda: _with(stall(30), timeout=0.2), APITimeoutError),
    "malformed-status-line": (lambda: _with(send(b"HTTP/9 200 OK\r\n\r\n")), APIConnectionError),
    "bad-content-length": (
        lambda: _with(send(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")),
        APIConnectionError,
    ),
    "redirect": (
        lambda: _with(send(http(302, headers={"Location": "https://evil.example/"}))),
        RedirectError,
    ),
    "429-too-long": (
        lambda: _with(send(http(429, headers={"Retry-After": "99999"}))),
        RateLimitError,
    ),
    "html-502": (
        lambda: _with(send(http(502, b"<html>", content_type="text/html"))),
        ServerError,
    ),
    "malformed-json": (
        lambda: _with(send(http(200, b'{"count": 1, "data": [{'))),
        ResponseDecodeError,
    ),
    "too-large": (
        lambda: _with(send(http(200, b" " * 5000)), max_response_bytes=1000),
        ResponseTooLargeError,
    ),
    "deadline": (_deadline, DeadlineExceededError),
    # The simulator's own faults, with the canary as the valid token.
    "503": (lambda: _simulated(Fault("status", status=503, times=9)), ServerError),
    "html-200": (lambda: _simulated(Fault("html200", times=9)), ResponseDecodeError),
    "206-invalid-space-token": (
        lambda: _simulated(Fault("206", message="Invalid Space Token")),
        BusinessLogicError,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_canary_absent_from_every_exception(name: str) -> None:
    make, expected = SCENARIOS[name]
    error = await make()
    assert isinstance(error, expected), repr(error)
    assert_clean(error)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_canary_absent_from_the_package_frames_locals(name: str) -> None:
    make, _ = SCENARIOS[name]
    error = await make()
    for line in package_locals(error):
        assert CANARY not in line, line


async def test_canary_reflected_by_the_server_is_redacted() -> None:
    body = b'{"message": "Invalid token \'%s\'.", "status_code": 401}' % CANARY.encode()
    error = await _with(send(http(401, body), close=False))
    assert isinstance(error, AuthenticationError)
    assert CANARY not in str(error)
    assert CANARY not in repr(error)


def assert_client_clean(client: UnpodClient) -> None:
    assert CANARY not in repr(client)
    assert CANARY not in str(client)
    assert CANARY not in f"{client}"
    assert CANARY not in repr(client._token)
    # Nor in what a debugger or a traceback-with-locals shows of its attributes.
    assert CANARY not in repr(vars(client))
    for value in vars(client).values():
        for text in shown(value):
            assert CANARY not in text, text


async def test_canary_absent_from_the_client_repr_and_attributes() -> None:
    client = UnpodClient(CANARY, ORG, base_url="https://unpod.ai")
    assert_client_clean(client)  # before its session is open
    async with client:
        assert_client_clean(client)  # and with it open


async def test_canary_absent_from_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "aiohttp.client", "aiohttp.internal", "asyncio", "unpod_async"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        for make, _ in SCENARIOS.values():
            error = await make()
            logging.getLogger("unpod_async.test").debug("failed", exc_info=error)
        # A pull that logs retries and drift, with the canary as the valid token.
        async with serve(tasks=300, token=CANARY, space_token=SPACE, org_handle=ORG) as sim:
            sim.faults.extend([Fault("reset", page=2), Fault("429", page=3, retry_after="0")])
            sim.faults.append(Fault("status", page=1, status=503))
            async with canary_client(sim.base_url, max_retries=3) as client:
                assert len(await client.get_all_tasks(SPACE, page_size=50)) == 300
    finally:
        for name in ("aiohttp", "aiohttp.client", "aiohttp.internal", "asyncio", "unpod_async"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("unpod_async") for r in caplog.records)  # it did log
    for record in caplog.records:
        text = formatter.format(record)
        assert CANARY not in text, text
        assert CANARY not in record.getMessage(), record.getMessage()
        assert CANARY not in repr(record.args), record.args
        assert CANARY not in repr(record.__dict__), record.__dict__
        assert CANARY not in (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            assert CANARY not in "".join(traceback.format_exception(record.exc_info[1]))
    assert CANARY not in caplog.text


async def test_canary_absent_from_progress_and_export_files(tmp_path: Path) -> None:
    seen: list[ExportProgress] = []
    async with (
        serve(tasks=300, token=CANARY, space_token=SPACE, org_handle=ORG) as sim,
        canary_client(sim.base_url) as client,
    ):
        await client.export_tasks(SPACE, tmp_path / "t.jsonl", page_size=50, progress=seen.append)
        await client.export_tasks(SPACE, tmp_path / "t.csv", format="csv", page_size=50)
        sim.faults.append(Fault("206", page=4, message="Invalid Space Token"))
        with pytest.raises(BusinessLogicError):  # leaves a partial file and a checkpoint
            await client.export_tasks(SPACE, tmp_path / "r.jsonl", page_size=50, resume=True)
    assert seen
    for progress in seen:
        assert CANARY not in repr(progress)
        assert CANARY not in log_line((board := Board(), board.update(progress))[0])
    files = list(tmp_path.iterdir())
    assert len(files) >= 4  # two exports, a partial file and its checkpoint
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path.name


# --------------------------------------------------------------------------- the command line


async def _cli(*args: str, token_env: str | None = CANARY) -> tuple[int, str]:
    env = {"PYTHONWARNINGS": "ignore"}
    if token_env is not None:
        env["UNPOD_API_TOKEN"] = token_env
    code, out, err = await run_python("-m", "unpod_async", *args, env=env)
    return code, out.decode(errors="replace") + err.decode(errors="replace")


async def test_canary_absent_from_cli_output(tmp_path: Path) -> None:
    pytest.importorskip("unpod_async.cli")
    reflect = b'{"message": "Invalid token %s", "status_code": 401}' % CANARY.encode()
    async with (
        serve(tasks=300, token=TOKEN, space_token=SPACE, org_handle=ORG) as wrong,
        serve(tasks=300, token=CANARY, space_token=SPACE, org_handle=ORG) as right,
        MiniServer() as echo,
    ):
        echo.on(send(http(401, reflect), close=False), times=1000)
        runs = await asyncio.gather(
            _cli("tasks", "get", SPACE, "--base-url", wrong.base_url, "-vv"),
            _cli("tasks", "get", SPACE, "--base-url", wrong.base_url, "--token", CANARY, "-vv"),
            _cli("--token=" + CANARY, "tasks", "get", SPACE, "--base-url", echo.url),
            _cli(
                "tasks",
                "export",
                SPACE,
                "-o",
                str(tmp_path / "fail.jsonl"),
                "--base-url",
                wrong.base_url,
                "-vv",
            ),
            _cli(
                "tasks",
                "export",
                SPACE,
                "-o",
                str(tmp_path / "ok.jsonl"),
                "--base-url",
                right.base_url,
                "-vv",
            ),
            _cli("tasks", "get", SPACE, "--base-url", right.base_url, "--page-size", "x"),
            _cli("tasks", "get", SPACE, "--base-url", right.base_url, token_env=CANARY + "\nX"),
        )
    codes = [code for code, _ in runs]
    assert codes == [1, 1, 1, 1, 0, 2, 2], runs
    for _, output in runs:
        assert CANARY not in output, output
    assert "401" in runs[0][1]
    assert (tmp_path / "ok.jsonl").read_bytes().count(b"\n") == 300
    assert CANARY.encode() not in (tmp_path / "ok.jsonl").read_bytes()
