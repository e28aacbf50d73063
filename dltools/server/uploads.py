"""Request bodies streamed to disk under a size limit, never held in memory whole.

An image comes either as the raw request body (``curl --data-binary @photo.jpg``) or as the
first file field of a ``multipart/form-data`` body (``curl -F image=@photo.jpg``); both are
counted while they stream to a file, and refused (:class:`TooLarge`) past the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from dltools.errors import DltoolsError


class TooLarge(Exception):
    """The body exceeds the upload limit (HTTP 413)."""


class _FirstFile:
    """Writes the data of the first part of a multipart body that carries a filename."""

    def __init__(self, boundary: bytes, out: BinaryIO) -> None:
        self.out = out
        self.filename: str | None = None
        self.writing = False
        self.field, self.value, self.headers = b"", b"", {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._field,
                "on_header_value": self._value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
            },
        )

    def _begin(self) -> None:
        self.headers = {}

    def _field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        if self.filename is None and b"filename" in params:
            self.filename = params[b"filename"].decode("utf-8", "replace") or "upload"
            self.writing = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.writing:
            self.out.write(data[start:end])

    def _part_end(self) -> None:
        self.writing = False


async def save_body(
    chunks: AsyncIterator[bytes], content_type: str, out: BinaryIO, limit: int
) -> str | None:
    """Stream a request body of at most ``limit`` bytes into ``out``; return the multipart
    file's name (None for a raw body). :class:`TooLarge` past the limit, DltoolsError for a
    body without an image."""
    kind, params = parse_options_header(content_type)
    form = None
    if kind == b"multipart/form-data":
        if b"boundary" not in params:
            raise DltoolsError("multipart/form-data body without a boundary")
        form = _FirstFile(params[b"boundary"], out)
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge
            if form is None:
                out.write(chunk)
            else:
                form.parser.write(chunk)
        if form is not None:
            form.parser.finalize()
    except MultipartParseError as err:
        raise DltoolsError(f"malformed multipart/form-data body ({err})") from None
    if form is not None and form.filename is None:
        raise DltoolsError("the multipart/form-data body holds no file field")
    if not size or not out.tell():
        raise DltoolsError("the request holds no image: send it as the body or as a file field")
    return None if form is None else form.filename


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """A whole (small) request body, :class:`TooLarge` past ``limit`` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return bytes(body)
