"""dltools serve: the real server (uvicorn on a free 127.0.0.1 port, in a thread) over HTTP.

Three small models: a tile model (as in test_segment), an FCN run trained for two batches
(as in test_fcn) and a spectral classifier; results are compared with the CLI's outputs for
the same model and image. A second server has a token, a 1 MB limit, one worker and no queue.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from test_segment import tile_model

from dltools.cli import main as dltools_main
from dltools.io.geo import read_profile, read_raster, write_raster
from dltools.io.images import read_image, write_image
from dltools.io.labels import default_colors, read_labeldefs, write_labels
from dltools.io.results import read_result
from dltools.server.app import ServerSettings, create_app
from dltools.server.registry import load_all
from dltools.spectral.cube import open_cube, open_labels
from dltools.spectral.labelled import labelled_pixels
from dltools.spectral.options import Training
from dltools.spectral.synthetic import spectral_scene
from dltools.spectral.training import train_autoencoder, train_classifier
from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
PHOTO = DEMO / "images" / "coast_01.jpg"
ORTHO = DEMO / "geotiff" / "coast_ortho.tif"
TILE = 32
BANDS = 16
TOKEN = "s3cret-token"


class Server:
    """A uvicorn server on a free localhost port, run in a daemon thread."""

    def __init__(self, app) -> None:
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def alive_and_clean(self) -> None:
        """The server still answers and no request left a file behind."""
        assert self.client.get("/health").json()["status"] == "ok"
        assert list(Path(self.app.state.work_root).iterdir()) == []

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        assert not Path(self.app.state.work_root).exists()


def run_cli(*args) -> int:
    return dltools_main([str(a) for a in args])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    tiles = tile_model(root / "tiles", [coastal_scene(768, 1024, seed=2)], TILE)
    write_labels(root / "labels.txt", CLASS_NAMES)
    write_image(root / "scene.jpg", coastal_scene(384, 512, seed=1)[0])
    fcn = root / "fcn"
    args = ["fcn", "train", "--name", fcn, "--data-dir", DEMO / "images"]
    args += ["--label-dir", DEMO / "labels", "--labeldefs", DEMO / "labeldefs.txt"]
    args += ["--encoder-weights", "none", "--alpha", "0.35", "--tile-size", "64"]
    args += ["--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2", "--val-crops", "1"]
    assert run_cli(*args) == 0
    scene = spectral_scene(24, 24, BANDS, n_materials=3, seed=0)
    np.save(root / "cube.npy", scene.cube)
    np.save(root / "cube_labels.npy", scene.labels)
    cube = open_cube(root / "cube.npy")
    training = Training(epochs=3, batch_size=64, seed=0)
    labels = open_labels(root / "cube_labels.npy", cube)
    data = labelled_pixels(cube, labels, training.holdout, seed=0)
    train_classifier(data, root / "spectra", {}, training, verbose=0)
    train_autoencoder(cube, root / "encoder", "mlp", {}, training, verbose=0)
    return {
        "root": root,
        "tiles": tiles,
        "fcn": fcn,
        "spectra": root / "spectra",
        "encoder": root / "encoder",
    }


@pytest.fixture(scope="module")
def server(models):
    served = load_all([str(models[k]) for k in ("tiles", "fcn", "spectra", "encoder")])
    running = Server(create_app(served, ServerSettings(workers=2)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def secured(models, tmp_path_factory):
    served = load_all([str(models["tiles"]), str(models["fcn"])])
    settings = ServerSettings(TOKEN, max_upload_bytes=2**20, workers=1, queue=0)
    running = Server(create_app(served, settings))
    yield running
    running.stop()


def decode(content: bytes, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


# --- endpoints -----------------------------------------------------------------------------


def test_health_and_models_describe_every_model(server):
    health = server.client.get("/health").json()
    assert health == {"status": "ok", "models": 4, "busy": 0, "capacity": 10}
    found = {m["name"]: m for m in server.client.get("/models").json()}
    assert {n: m["kind"] for n, m in found.items()} == {
        "tiles": "tile",
        "fcn": "fcn",
        "spectra": "spectral-classifier",
        "encoder": "spectral-autoencoder",
    }
    tiles = found["tiles"]
    assert [c["name"] for c in tiles["classes"]] == list(CLASS_NAMES)
    assert tiles["classes"][0]["color"] == "#{:02x}{:02x}{:02x}".format(*default_colors(6)[0])
    assert (tiles["tile_size"], tiles["bands"]) == (TILE, 3)
    names, colors = read_labeldefs(DEMO / "labeldefs.txt")
    assert [c["name"] for c in found["fcn"]["classes"]] == names
    assert found["fcn"]["classes"][-1]["color"] == "#{:02x}{:02x}{:02x}".format(*colors[-1])
    assert found["spectra"]["bands"] == BANDS and len(found["spectra"]["classes"]) == 3
    assert server.client.get("/models/fcn").json() == found["fcn"]
    assert "/models/{name}/segment" in server.client.get("/openapi.json").json()["paths"]
    assert server.client.get("/docs").status_code == 200
    server.alive_and_clean()


def test_tile_segment_equals_the_cli(server, models, tmp_path):
    image = models["root"] / "scene.jpg"
    args = ["segment", image, "-m", models["tiles"], "-l", models["root"] / "labels.txt"]
    args += ["-c", DEMO / "labeldefs.txt", "-t", TILE, "--refine", "mlp", "--out-dir", tmp_path]
    assert run_cli(*args) == 0
    expected = read_result(tmp_path / f"scene_ares_{TILE}.mat").class_map + 1  # -1 (nodata) -> 0
    response = server.client.post(
        "/models/tiles/segment", params={"refine": "mlp"}, content=image.read_bytes()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    labels = read_image(decode(response.content, tmp_path, "label.png"))[..., 0]
    np.testing.assert_array_equal(labels, expected)
    fractions = json.loads(response.headers["x-class-fractions"])
    counts = np.bincount(expected.ravel(), minlength=7)[1:]
    assert fractions == pytest.approx(dict(zip(CLASS_NAMES, counts / counts.sum(), strict=True)))
    summary = server.client.post(
        "/models/tiles/segment",
        params={"refine": "mlp", "format": "json"},
        files={"image": ("scene.jpg", image.read_bytes(), "image/jpeg")},
    ).json()
    assert summary["fractions"] == pytest.approx(fractions)
    assert summary["georeferenced"] is False and summary["image"] == "scene.jpg"
    confidence = summary["confidence"]
    assert confidence["pixels"] == labels.size
    assert 0 < confidence["min"] <= confidence["p05"] <= confidence["median"] <= 1
    server.alive_and_clean()


def test_geotiff_upload_gives_a_geotiff_on_its_grid_equal_to_the_cli(server, models, tmp_path):
    args = ["segment", ORTHO, "-m", models["tiles"], "-l", models["root"] / "labels.txt"]
    args += ["-c", DEMO / "labeldefs.txt", "-t", TILE, "--refine", "none", "--out-dir", tmp_path]
    assert run_cli(*args) == 0
    response = server.client.post(
        "/models/tiles/segment",
        params={"refine": "none"},
        files={"image": (ORTHO.name, ORTHO.read_bytes(), "image/tiff")},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/tiff"
    assert "coast_ortho_tiles_label.tif" in response.headers["content-disposition"]
    got = decode(response.content, tmp_path, "served.tif")
    cli = tmp_path / f"coast_ortho_ares_{TILE}.tif"
    np.testing.assert_array_equal(read_raster(got), read_raster(cli))
    profile, source = read_profile(got), read_profile(ORTHO)
    assert profile["crs"] == source["crs"] and profile["transform"] == source["transform"]
    server.alive_and_clean()


@pytest.mark.parametrize("tta", [False, True])
def test_fcn_segment_equals_the_cli(server, models, tmp_path, tta):
    samples = tmp_path / "in"
    samples.mkdir()
    shutil.copy(PHOTO, samples)
    args = ["fcn", "infer", "--name", models["fcn"], "--samples-dir", samples]
    assert run_cli(*args, "--output-dir", tmp_path / "out", "--tta" if tta else "--no-tta") == 0
    expected = read_image(tmp_path / "out" / "coast_01_fcn_label.png")
    response = server.client.post(
        "/models/fcn/segment", params={"tta": tta}, content=PHOTO.read_bytes()
    )
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(read_image(decode(response.content, tmp_path, "l.png")), expected)
    summary = server.client.post(
        "/models/fcn/segment", params={"tta": tta, "format": "json"}, content=PHOTO.read_bytes()
    ).json()
    counts = np.bincount(expected.ravel(), minlength=7)[1:]
    names = [c["name"] for c in server.client.get("/models/fcn").json()["classes"]]
    assert summary["fractions"] == pytest.approx(
        dict(zip(names, counts / counts.sum(), strict=True))
    )
    assert summary["confidence"]["pixels"] == expected.size
    server.alive_and_clean()


def test_fcn_segment_with_crf(server, models):
    response = server.client.post(
        "/models/fcn/segment", params={"crf": True, "format": "json"}, content=PHOTO.read_bytes()
    )
    assert response.status_code == 200, response.text
    assert sum(response.json()["fractions"].values()) == pytest.approx(1)
    server.alive_and_clean()


def test_classify_equals_the_cli(server, models, tmp_path):
    cube = np.load(models["root"] / "cube.npy")
    args = ["spectral", "predict", "-m", models["spectra"], "-i", models["root"] / "cube.npy"]
    assert run_cli(*args, "-o", tmp_path, "--unknown-below", "0.6") == 0
    expected = read_raster(tmp_path / "cube_classes.tif")[..., 0].ravel()
    scores = read_raster(tmp_path / "cube_scores.tif").reshape(-1, 3)
    body = {"spectra": cube.reshape(-1, BANDS).tolist(), "unknown_below": 0.6}
    response = server.client.post("/models/spectra/classify", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    np.testing.assert_array_equal(result["values"], expected)
    np.testing.assert_allclose(result["probabilities"], scores, rtol=1e-5, atol=1e-6)
    names = dict(zip([1, 2, 3], result["class_names"], strict=True))
    assert result["classes"] == [names.get(v, "unknown") for v in expected]
    assert "unknown" in result["classes"] or (scores.max(axis=1) >= 0.6).all()
    body = {"spectra": cube[0, :2].tolist(), "features": "dense_0_relu"}
    features = server.client.post("/models/spectra/classify", json=body).json()["features"]
    assert len(features) == 2 and len(features[0]) > 1
    server.alive_and_clean()


def test_encode_equals_the_cli(server, models, tmp_path):
    cube = np.load(models["root"] / "cube.npy")
    args = ["spectral", "encode", "-m", models["encoder"], "-i", models["root"] / "cube.npy"]
    assert run_cli(*args, "-o", tmp_path) == 0
    expected = read_raster(tmp_path / "cube_latent.tif")
    body = {"spectra": cube.reshape(-1, BANDS).tolist()}
    response = server.client.post("/models/encoder/encode", json=body)
    assert response.status_code == 200, response.text
    latent = np.array(response.json()["latent"])
    np.testing.assert_allclose(latent, expected.reshape(len(latent), -1), rtol=1e-5, atol=1e-6)
    wrong = server.client.post("/models/spectra/encode", json=body)
    assert wrong.status_code == 400 and "spectral-classifier" in wrong.json()["detail"]
    server.alive_and_clean()


# --- bad requests --------------------------------------------------------------------------


def two_band_tiff(folder: Path) -> bytes:
    path = folder / "two.tif"
    profile = {"width": 64, "height": 64}
    write_raster(path, np.zeros((64, 64, 2), np.uint8), profile)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("route", "kwargs", "status", "reason"),
    [
        ("/models/nope/segment", {"content": b"x"}, 404, "no model 'nope'"),
        ("/models/tiles/classify", {"json": {"spectra": [[1]]}}, 400, "tile model"),
        ("/models/spectra/segment", {"content": b"x"}, 400, "spectral-classifier model"),
        ("/models/tiles/segment", {"content": b"not an image at all"}, 422, "cannot read"),
        ("/models/tiles/segment", {"content": PHOTO.read_bytes()[:3000]}, 422, "coast_01.jpg"),
        ("/models/fcn/segment", {"content": b""}, 422, "no image"),
        ("/models/fcn/segment", {"files": {"text": (None, "x")}}, 422, "no file field"),
        ("/models/tiles/segment?refine=magic", {"content": b"x"}, 422, "refine"),
        ("/models/spectra/classify", {"json": {"spectra": [[1.0, 2.0]]}}, 422, "16-band"),
        ("/models/spectra/classify", {"content": b'{"spectra": [[NaN'}, 422, "not a classify"),
        ("/models/spectra/classify", {"json": {"spectra": []}}, 422, "non-empty"),
        (
            "/models/spectra/classify",
            {"json": {"spectra": [[1.0] * BANDS], "features": "nope"}},
            422,
            "no layer 'nope'",
        ),
    ],
)
def test_bad_requests_get_json_errors_and_leave_nothing(server, route, kwargs, status, reason):
    if route.endswith("tiles/segment") and kwargs.get("content", b"")[:2] == b"\xff\xd8":
        route += "?filename=coast_01.jpg"  # a truncated JPEG, named in the error
    response = server.client.post(route, **kwargs)
    assert response.status_code == status, response.text
    assert reason in str(response.json()["detail"])
    server.alive_and_clean()


def test_wrong_band_count_and_nan_spectra_are_422(server, tmp_path):
    response = server.client.post("/models/tiles/segment", content=two_band_tiff(tmp_path))
    assert response.status_code == 422 and "2 band(s)" in response.json()["detail"]
    spectra = [[1.0] * BANDS, [1.0] * (BANDS - 1) + [float("inf")]]
    body = json.dumps({"spectra": spectra}).replace("Infinity", "1e999")  # inf as a JSON number
    response = server.client.post("/models/spectra/classify", content=body)
    assert response.status_code == 422 and "spectrum 1" in response.json()["detail"]
    server.alive_and_clean()


# --- token, limits, a full queue -----------------------------------------------------------


def test_token_is_needed_everywhere_but_health(secured):
    client = secured.client
    assert client.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = client.get("/models", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        post = client.post("/models/tiles/segment", content=PHOTO.read_bytes(), headers=headers)
        assert post.status_code == 401
    assert client.get("/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    for route in ("/", "/docs", "/openapi.json"):  # the page and the docs too
        assert client.get(route).status_code == 401
        assert client.get(route, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    secured.alive_and_clean()


def raw_request(url: str, head: str, body_parts: list[bytes]) -> int:
    """Send a request by hand (to declare a size or stream chunks); return the status."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:  # the server answered and closed early: fine
            pass
        return int(sock.makefile("rb").readline().split()[1])


def test_uploads_over_the_limit_get_413_unread(secured):
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    head = f"POST /models/tiles/segment HTTP/1.1\r\nHost: x\r\n{auth}"
    declared = head + f"Content-Length: {50 * 2**20}\r\n\r\n"
    assert raw_request(secured.url, declared, [b"\0" * 65536]) == 413  # 64 kB of 50 MB sent
    chunk = b"\0" * 2**16
    chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 40 + [b"0\r\n\r\n"]  # 2.5 MB, no length
    assert raw_request(secured.url, chunked, parts) == 413
    secured.alive_and_clean()


def test_a_full_queue_gets_503_with_retry_after(secured):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    slow = {}

    def first() -> None:  # the CRF on the tile model's evidence: a few seconds
        slow["response"] = secured.client.post(
            "/models/tiles/segment",
            params={"refine": "crf", "fct": 1, "format": "json"},
            content=PHOTO.read_bytes(),
            headers=auth,
        )

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 30
    while secured.client.get("/health").json()["busy"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused = secured.client.post("/models/fcn/segment", content=PHOTO.read_bytes(), headers=auth)
    thread.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "busy" in refused.json()["detail"]
    assert slow["response"].status_code == 200
    secured.alive_and_clean()


# --- the command line ----------------------------------------------------------------------


def test_serve_refuses_before_listening(models, tmp_path, capsys):
    assert run_cli("serve", "--model", tmp_path / "missing") == 2
    assert "missing: model not found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"format": "dltools-fcn-run"}')
    assert run_cli("serve", "--model", broken) == 2
    assert "model.keras" in capsys.readouterr().err
    assert run_cli("serve", "--model", models["tiles"], "--host", "0.0.0.0") == 2
    assert "--token-file" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert run_cli("serve", "--model", models["tiles"], "--token-file", tmp_path / "empty") == 2
    assert "token file is empty" in capsys.readouterr().err
    same = ["--model", models["tiles"], "--model", models["tiles"]]
    assert run_cli("serve", *same) == 2
    assert "two models are named 'tiles'" in capsys.readouterr().err


def test_help_gives_every_default():
    from dltools.cli.serve import build_parser

    text = build_parser().format_help()
    for default in ("127.0.0.1)", "8000)", "200.0)", "(default: 1)", "(default: 8)"):
        assert default in " ".join(text.split())
