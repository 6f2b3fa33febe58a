"""The one place where docker-py's and requests' exceptions become dbstate's (`core.errors`), always raised `from` the
original: nothing above the Docker adapter sees a docker-py exception."""

from __future__ import annotations

import docker.errors
import requests.exceptions

from controller.core import errors
from controller.core.text import printable

API_VERSION = "1.41"  # Docker Engine 20.10 and newer


def translate(exc: BaseException, doing: str, host: str) -> errors.EngineError:
    """The one place where docker-py's and requests' exceptions become ours."""
    if isinstance(exc, docker.errors.ImageNotFound):
        return errors.ImageNotFound(f"{doing}: image not found: {explain(exc)}")
    if isinstance(exc, docker.errors.NotFound):
        return errors.EngineNotFound(f"{doing}: {explain(exc)}")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        if status >= 500:
            return errors.EngineTransient(f"{doing}: engine error {status}: {explain(exc)}")
        if status == 400 and "too new" in explain(exc):
            return errors.EnginePermanent(
                f"the engine at {host} is older than Docker 20.10 (API {API_VERSION}): {explain(exc)}"
            )
        return errors.EnginePermanent(f"{doing}: {explain(exc)}")
    if isinstance(exc, requests.exceptions.SSLError):
        return errors.EngineUnavailable(
            f"the Docker engine at {host} and dbstate do not trust each other ({_reason(exc)}): its certificate must "
            "be signed by the Host's tls.ca, and ours (tls.cert, tls.key) by the CA it verifies clients with"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return errors.EngineUnavailable(f"{doing}: the Docker engine at {host} did not answer in time")
    if isinstance(
        exc, requests.exceptions.ConnectionError | docker.errors.DockerException | ConnectionError | FileNotFoundError
    ):
        return errors.EngineUnavailable(
            f"cannot reach the Docker engine at {host} ({_reason(exc)}): is it running? "
            "Start a private one with `bash scripts/local-engine` and export the DOCKER_HOST it prints, "
            "or pass --docker-host"
        )
    return errors.EngineError(f"{doing}: {type(exc).__name__}: {exc}")


def explain(exc: docker.errors.APIError) -> str:
    return printable(str(exc.explanation or exc).strip())


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for hint in (
        "No such file or directory",
        "Connection refused",
        "Permission denied",
        "Connection reset",
        "CERTIFICATE_VERIFY_FAILED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    ):
        if hint in text:
            return hint.lower()
    return type(exc).__name__


def says(exc: BaseException, status: int, *fragments: str) -> bool:
    """docker-py's `exc` is the engine answering `status` with one of `fragments` in its message."""
    if not isinstance(exc, docker.errors.APIError) or exc.status_code != status:
        return False
    text = explain(exc).lower()
    return any(f in text for f in fragments)
