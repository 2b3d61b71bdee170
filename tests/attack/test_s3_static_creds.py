"""Attacks of round 3 on the botocore-free s3:// reads (remotes/s3/static_creds.py): each credentials setup
either resolves to exactly the keys, token and region botocore resolves, or is left to
botocore. botocore itself, on the same real files, is the oracle."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from snapferry.remotes.s3.static_creds import static_setup

_KEYS = "aws_access_key_id = AK\naws_secret_access_key = SK\n"
_BASE = "[profile base]\n"
_BASE_CREDS = "[base]\naws_access_key_id = B\naws_secret_access_key = BS\n"
_ROLE = "role_arn = arn:aws:iam::1:role/x\nsource_profile = base\n"

# name: (config file, credentials file, environment, --configProfile)
CASES: dict[str, tuple[str, str, dict[str, str], str | None]] = {
    # a role in the config file, under section names botocore also reads as that profile
    "role in [profile default]": (f"[profile default]\n{_ROLE}{_BASE}", f"[default]\n{_KEYS}{_BASE_CREDS}", {}, None),
    "role in a quoted profile": (f'[profile "p"]\n{_ROLE}{_BASE}', f"[p]\n{_KEYS}{_BASE_CREDS}", {}, "p"),
    "role in a profile with spaces": (f"[profile   p]\n{_ROLE}{_BASE}", f"[p]\n{_KEYS}{_BASE_CREDS}", {}, "p"),
    # keys split across places: botocore refuses them (PartialCredentialsError)
    "only the access key in the environment": ("", f"[default]\n{_KEYS}", {"AWS_ACCESS_KEY_ID": "EK"}, None),
    "only the access key in the credentials file": (
        "[default]\naws_access_key_id = CK\naws_secret_access_key = CS\n",
        "[default]\naws_access_key_id = AK\n", {}, None,
    ),
    # a token from the other file than the keys, and both token names in one file
    "token in the config, keys in the credentials file": (
        "[default]\naws_session_token = CT\n", f"[default]\n{_KEYS}", {}, None,
    ),
    "both token names": ("", f"[default]\n{_KEYS}aws_security_token = T1\naws_session_token = T2\n", {}, None),
    # an empty AWS_PROFILE names the profile "" for botocore (ProfileNotFound)
    "empty AWS_PROFILE": ("", f"[default]\n{_KEYS}", {"AWS_PROFILE": ""}, None),
    # what must keep working without botocore
    "plain default profile": ("[default]\nregion = eu-west-1\n", f"[default]\n{_KEYS}", {}, None),
    "environment keys beside AWS_PROFILE": (
        "[profile p]\nregion = eu-west-1\n", f"[p]\n{_KEYS}",
        {"AWS_PROFILE": "p", "AWS_ACCESS_KEY_ID": "EK", "AWS_SECRET_ACCESS_KEY": "ES"}, None,
    ),
    "keys in the config file only": ("[default]\naws_access_key_id = CK\naws_secret_access_key = CS\n", "", {}, None),
}
MUST_BE_STATIC = {"plain default profile", "environment keys beside AWS_PROFILE", "keys in the config file only"}


def _botocore(config: str, creds: str, profile: str | None, monkeypatch: pytest.MonkeyPatch,
              env: dict[str, str]) -> tuple[str, str, str | None, str] | str:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    session = botocore.session.Session()
    session.set_config_variable("config_file", config)
    session.set_config_variable("credentials_file", creds)
    if profile:
        session.set_config_variable("profile", profile)
    try:
        c = session.get_credentials()
    except Exception as e:  # botocore's own refusal is an answer too
        return type(e).__name__
    assert c is not None
    if c.method not in ("env", "shared-credentials-file", "config-file"):
        return c.method  # assume-role and the like: never static
    f = c.get_frozen_credentials()
    return f.access_key, f.secret_key, f.token, session.get_config_variable("region") or "us-east-1"


@pytest.mark.parametrize("case", list(CASES))
def test_static_setup_answers_what_botocore_answers_or_leaves_it_to_botocore(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, creds, env, profile = CASES[case]
    for k in [k for k in __import__("os").environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "config").write_text(config)
    (tmp_path / "credentials").write_text(creds)
    cpath, kpath = str(tmp_path / "config"), str(tmp_path / "credentials")
    ours = static_setup("bkt", "http://127.0.0.1:1", True, kpath, cpath, profile, env)
    theirs = _botocore(cpath, kpath, profile, monkeypatch, env)
    if ours is None:
        assert case not in MUST_BE_STATIC, theirs
        return
    assert (ours.keys.access_key, ours.keys.secret_key, ours.keys.token, ours.region) == theirs
