"""Where uploaded images are kept: an S3 bucket (AWS, or any S3-compatible store self-hosted)
or a directory on the gateway's disk. Both answer the same small protocol, so the image flow
does not know which it has.

Keys are ``/``-separated, made by the caller from ids only (never from client text); the disk
store still refuses any key that would leave its directory. Reads are bounded by ``max_bytes``.
boto3 is imported when the S3 store is first used and its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kefu_core.infra.errors import StoreError

__all__ = ["Blob", "BlobStore", "DiskBlobs", "PresignedPost", "S3Blobs"]

_KEY = re.compile(r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$")


@dataclass(frozen=True)
class Blob:
    data: bytes
    content_type: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class PresignedPost:
    """A form to POST the file to: ``url`` and the ``fields`` to send before the file."""

    url: str
    fields: dict[str, str]


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str,
                  metadata: dict[str, str]) -> None: ...

    async def get(self, key: str, *, max_bytes: int) -> Blob | None:
        """The object, or None when there is none (or it is over ``max_bytes``)."""

    async def head(self, key: str) -> dict[str, str] | None:
        """The object's metadata, or None when there is none."""

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/``; how many there were."""


def _checked(key: str) -> str:
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError("bad blob key")
    return key


class DiskBlobs:
    """Objects as files under ``root`` (the data and a ``.meta.json`` beside it)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / _checked(key)).resolve()
        if self.root not in path.parents:
            raise ValueError("bad blob key")
        return path

    async def put(self, key: str, data: bytes, *, content_type: str,
                  metadata: dict[str, str]) -> None:
        path = self.path(key)
        meta = json.dumps({"content_type": content_type, "metadata": metadata})
        await asyncio.to_thread(self._write, path, data, meta)

    @staticmethod
    def _write(path: Path, data: bytes, meta: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            path.with_name(path.name + ".meta.json").write_text(meta, encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:
            raise StoreError("cannot write the image") from exc

    async def get(self, key: str, *, max_bytes: int) -> Blob | None:
        return await asyncio.to_thread(self._read, self.path(key), max_bytes)

    @staticmethod
    def _read(path: Path, max_bytes: int) -> Blob | None:
        try:
            if not path.is_file() or path.stat().st_size > max_bytes:
                return None
            meta = json.loads(path.with_name(path.name + ".meta.json").read_text("utf-8"))
            return Blob(path.read_bytes(), str(meta["content_type"]), dict(meta["metadata"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError("cannot read the image") from exc

    async def head(self, key: str) -> dict[str, str] | None:
        path = self.path(key)
        meta_path = path.with_name(path.name + ".meta.json")
        try:
            if not path.is_file():
                return None
            meta = json.loads(await asyncio.to_thread(meta_path.read_text, "utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError("cannot read the image") from exc
        return {**meta["metadata"], "content-type": meta["content_type"]}

    async def delete(self, key: str) -> None:
        path = self.path(key)
        for name in (path, path.with_name(path.name + ".meta.json")):
            with contextlib.suppress(FileNotFoundError):
                name.unlink()

    async def delete_prefix(self, prefix: str) -> int:
        folder = self.path(prefix)
        if not folder.is_dir():
            return 0
        count = sum(1 for item in folder.rglob("*")
                    if item.is_file() and not item.name.endswith((".meta.json", ".partial")))
        await asyncio.to_thread(shutil.rmtree, folder, True)
        return count


class S3Blobs:
    """Objects in an S3 bucket. ``client`` is a boto3 S3 client (built on first use: the
    endpoint comes from ``AWS_ENDPOINT_URL_S3`` when set, e.g. MinIO or moto)."""

    def __init__(self, bucket: str, *, region: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", region_name=self._region,
                config=Config(signature_version="s3v4",
                              retries={"max_attempts": 3, "mode": "standard"},
                              connect_timeout=3, read_timeout=10))
        return self._client

    async def _call(self, method: str, failure: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(getattr(self.client, method), **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreError(failure) from exc
        except BotoCoreError as exc:
            raise StoreError(failure) from exc

    async def put(self, key: str, data: bytes, *, content_type: str,
                  metadata: dict[str, str]) -> None:
        await self._call("put_object", "cannot write the image", Bucket=self.bucket,
                         Key=_checked(key), Body=data, ContentType=content_type,
                         Metadata=metadata)

    async def get(self, key: str, *, max_bytes: int) -> Blob | None:
        found = await self._call("get_object", "cannot read the image", Bucket=self.bucket,
                                 Key=_checked(key))
        if found is None:
            return None
        body = found["Body"]
        try:
            if int(found.get("ContentLength", 0)) > max_bytes:
                return None
            data = await asyncio.to_thread(body.read, max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            return None
        return Blob(data, str(found.get("ContentType", "")), dict(found.get("Metadata", {})))

    async def head(self, key: str) -> dict[str, str] | None:
        found = await self._call("head_object", "cannot read the image", Bucket=self.bucket,
                                 Key=_checked(key))
        if found is None:
            return None
        return {**found.get("Metadata", {}), "content-type": str(found.get("ContentType", ""))}

    async def delete(self, key: str) -> None:
        await self._call("delete_object", "cannot delete the image", Bucket=self.bucket,
                         Key=_checked(key))

    async def delete_prefix(self, prefix: str) -> int:
        count = 0
        while True:
            listed = await self._call("list_objects_v2", "cannot list the images",
                                      Bucket=self.bucket, Prefix=_checked(prefix) + "/",
                                      MaxKeys=1000)
            keys = [{"Key": item["Key"]} for item in (listed or {}).get("Contents", [])]
            if not keys:
                return count
            await self._call("delete_objects", "cannot delete the images", Bucket=self.bucket,
                             Delete={"Objects": keys, "Quiet": True})
            count += len(keys)

    def presign_post(self, key: str, *, content_type: str, max_bytes: int,
                     expires_s: int) -> PresignedPost:
        """A form that uploads at most ``max_bytes`` of ``content_type`` to ``key`` within
        ``expires_s`` (signed locally: no call to S3)."""
        form = self.client.generate_presigned_post(
            Bucket=self.bucket, Key=_checked(key),
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type},
                        ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_s)
        return PresignedPost(url=str(form["url"]), fields=dict(form["fields"]))

    def presign_get(self, key: str, *, expires_s: int) -> str:
        """A URL that reads ``key`` for ``expires_s`` (signed locally)."""
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": _checked(key)},
            ExpiresIn=expires_s))
