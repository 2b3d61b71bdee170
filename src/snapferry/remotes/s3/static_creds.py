"""Static S3 credentials and the bucket's base URL, found without importing botocore.

Importing botocore and creating its client cost a nothing-changed restore from S3
about half of its 0.85 s. When the keys are static (the environment, or a shared
credentials/config file profile holding only keys and a region) and the URL shape
is one we know, the reads need none of it: `static_setup` answers the keys, the
signing region and the bucket's base URL, in botocore's precedence (environment
first unless a profile was named explicitly, then the credentials file over the
config file). Anything it does not know (roles, SSO, credential processes,
endpoint or TLS settings in the environment or the profile, virtual-host
addressing on a custom endpoint) answers None, and the backend uses botocore.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from .sigv4 import Keys

# Profile keys that only carry static keys and a region; any other key may change what
# botocore does (role_arn, sso_*, credential_process, endpoint_url, s3 = ...).
_PLAIN_KEYS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                         "aws_security_token", "region"})
# Environment settings that change credentials or endpoints for botocore.
_BOTOCORE_ONLY_ENV = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL",
                      "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_", "AWS_CONTAINER_")
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class StaticS3:
    keys: Keys
    region: str
    base: str  # the bucket's URL, ending in "/": object keys are appended quoted
    ca_bundle: str | None = None  # AWS_CA_BUNDLE, which botocore's TLS would trust

    @property
    def origin(self) -> str:
        split = urllib.parse.urlsplit(self.base)
        return f"{split.scheme}://{split.netloc}"


def static_setup(
    bucket: str, endpoint: str | None, path_style: bool, creds_file: str | None, config_file: str | None,
    profile: str | None,
    env: Mapping[str, str] | None = None,
) -> StaticS3 | None:
    """The static setup of these options, or None when botocore must decide."""
    env = os.environ if env is None else env
    if any(k.startswith(_BOTOCORE_ONLY_ENV) and v for k, v in env.items()):
        return None
    explicit = bool(profile)
    named = next((env[v] for v in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE") if v in env), None)
    if not explicit and named == "":
        return None  # botocore looks for a profile named "" and fails
    name = profile or named or "default"
    conf = _config_profile(config_file or env.get("AWS_CONFIG_FILE") or "~/.aws/config", name)
    cred = _section(creds_file or env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", name)
    if conf is None or cred is None:
        return None  # unreadable: let botocore word it
    merged = {**conf, **cred}
    if set(merged) - _PLAIN_KEYS or (name != "default" and not conf and not cred):
        return None  # not plain keys, or a named profile that is missing (botocore's ProfileNotFound)
    # botocore's providers in order, each all or nothing: a provider with an access key
    # but no secret stops the chain (PartialCredentialsError), and neither the keys nor
    # the token ever mix across the environment and the two files.
    keys = None
    for source in ([] if explicit else [_env_keys(env)]) + [_file_keys(cred), _file_keys(conf)]:
        if source is _PARTIAL:
            return None
        if source is not None:
            keys = source
            break
    if not isinstance(keys, Keys):
        return None  # instance roles and the rest of botocore's chain
    region = env.get("AWS_DEFAULT_REGION") or merged.get("region") or "us-east-1"
    base = _base_url(bucket, endpoint, path_style, region)
    return StaticS3(keys, region, base, env.get("AWS_CA_BUNDLE") or None) if base is not None else None


_PARTIAL = object()  # an access key without its secret: botocore refuses these


def _env_keys(env: Mapping[str, str]) -> Keys | object | None:
    access, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access:
        return None
    if not secret:
        return _PARTIAL
    return Keys(access, secret, env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None)


def _file_keys(section: Mapping[str, str]) -> Keys | object | None:
    if "aws_access_key_id" not in section:
        return None
    if not section.get("aws_secret_access_key"):
        return _PARTIAL
    token = section.get("aws_security_token") or section.get("aws_session_token") or None
    return Keys(section["aws_access_key_id"], section["aws_secret_access_key"], token)


def _read(path: str) -> configparser.ConfigParser | None:
    """The parsed file (empty when absent); None when unreadable."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-defaults")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        return parser
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser


def _section(path: str, name: str) -> dict[str, str] | None:
    """The credentials file's profile ({} when the file or profile is absent); None when unreadable."""
    parser = _read(path)
    if parser is None:
        return None
    return {k.lower(): v.strip() for k, v in parser.items(name)} if parser.has_section(name) else {}


def _config_profile(path: str, name: str) -> dict[str, str] | None:
    """The config file's profile, found as botocore finds it: `[default]`, `[profile NAME]`,
    `[profile "NAME"]`, any spacing. Several sections naming it (botocore keeps the last
    one whole) are left to botocore: None."""
    parser = _read(path)
    if parser is None:
        return None
    out: dict[str, str] | None = None
    for section in parser.sections():
        if section.startswith("profile"):
            try:
                words = shlex.split(section)
            except ValueError:
                continue
            if len(words) != 2 or words[1] != name:
                continue
        elif section != "default" or name != "default":
            continue
        if out is not None:
            return None
        out = {k.lower(): v.strip() for k, v in parser.items(section)}
    return out or {}


def _base_url(bucket: str, endpoint: str | None, path_style: bool, region: str) -> str | None:
    quoted = urllib.parse.quote(bucket, safe="~")
    if endpoint:
        if not path_style:
            return None  # virtual hosts on a custom endpoint: botocore's endpoint rules decide
        return f"{endpoint.rstrip('/')}/{quoted}/"
    if not re.fullmatch(r"[a-z0-9-]+", region):
        return None
    if path_style:
        return f"https://s3.{region}.amazonaws.com/{quoted}/"
    if not _DNS_BUCKET.match(bucket):
        return None
    return f"https://{bucket}.s3.{region}.amazonaws.com/"
