"""`arcface-keras serve`: the embedding commands over HTTP (FastAPI).

One process holds a run's exported model (`gallery.ExportedModel`) and a
gallery store (`gallery_store.GalleryStore`), which other processes may
write too. Uploads are decoded and resized by the same TensorFlow code as
the commands' image files (`ImageFiles.decode_bytes`), so the service and
``identify`` give the same answers on the same files. Concurrent requests'
images go through the model together (`Batcher`). Bad requests get a 4xx
status and a JSON body ``{"error": "<one sentence>"}``; the server goes on.

FastAPI (with uvicorn) is the ecosystem's default for a JSON API: typed
multipart forms, the OpenAPI schema at ``/openapi.json`` and its page at
``/docs``, and a test client that needs no socket.
"""

import io
import os
import queue
import threading

import numpy as np

from arcface_keras.errors import UserInputError

MAX_BYTES = 10 * 1024 * 1024  # per uploaded file
MAX_PIXELS = 40_000_000  # per image, read from its header before decoding (decompression bombs)
MAX_FILES = 200  # per enrolment
FORMATS = ("JPEG", "PNG", "BMP", "GIF")


class RequestError(Exception):
    """A request the service refuses: its HTTP status and one sentence."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Batcher:
    """Runs `embed` (uint8 images (N, H, W, C) → embeddings) over the images of
    concurrent callers together: a caller's images wait at most `wait`
    seconds for others, up to `max_batch` images a call."""

    def __init__(self, embed, max_batch=64, wait=0.005):
        self.embed, self.max_batch, self.wait = embed, max_batch, wait
        self._queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="batcher").start()

    def __call__(self, images):
        done, result = threading.Event(), {}
        self._queue.put((images, done, result))
        done.wait()
        if "error" in result:
            raise result["error"]
        return result["embeddings"]

    def _run(self):
        while True:
            pending = [self._queue.get()]
            count = len(pending[0][0])
            try:
                while count < self.max_batch:
                    item = self._queue.get(timeout=self.wait)
                    pending.append(item)
                    count += len(item[0])
            except queue.Empty:
                pass
            try:
                embeddings = self.embed(np.concatenate([images for images, _, _ in pending]))
                start = 0
                for images, _, result in pending:
                    result["embeddings"] = embeddings[start:start + len(images)]
                    start += len(images)
            except Exception as error:  # handed to every waiting caller, which raises it
                for _, _, result in pending:
                    result["error"] = error
            for _, done, _ in pending:
                done.set()


class Service:
    """What the endpoints do, apart from HTTP: decode, embed, search, enrol."""

    def __init__(self, run_folder, gallery_path, batching=True, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
        from arcface_keras.toolkit.data.folders import ImageFiles
        from arcface_keras.toolkit.gallery import ExportedModel
        from arcface_keras.toolkit.gallery_store import GalleryStore, is_store

        if not is_store(gallery_path):
            raise UserInputError(f"--gallery {gallery_path!r}: the service writes a store, a path not ending in .npz "
                                 "(convert an .npz with: arcface-keras enrol RUN --convert OLD.npz --output NEW.db).")
        self.model = ExportedModel(run_folder)
        self.store = GalleryStore(gallery_path, self.model.fingerprint,
                                  (self.model.calibration or {}).get("thresholds", {}), create=True)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self._files = ImageFiles(np.array([], dtype=object), self.model.image_shape, resize=True)
        self._lock = threading.Lock()  # one SQLite connection: one thread at a time
        self._snapshot, self._version = None, None
        self.embed_images = Batcher(self._embed_arrays) if batching else self._embed_arrays
        import tensorflow as tf

        self._decode = tf.function(self._files.decode_bytes, input_signature=[tf.TensorSpec((), tf.string)])

    # -- images -----------------------------------------------------------
    def decode(self, data, field):
        """One uploaded file's bytes → uint8 (H, W, C) image, or a RequestError."""
        from PIL import Image, UnidentifiedImageError

        if not data:
            raise RequestError(400, f"The file in field '{field}' is empty.")
        if len(data) > self.max_bytes:
            raise RequestError(413, f"The file in field '{field}' has {len(data)} bytes; the limit is {self.max_bytes}.")
        try:
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                kind, (width, height) = header.format, header.size
        except Image.DecompressionBombError:
            raise RequestError(413, f"The image in field '{field}' declares more pixels than any limit allows.") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise RequestError(400, f"The file in field '{field}' is not an image ({', '.join(FORMATS)}).") from None
        if kind not in FORMATS:
            raise RequestError(400, f"The file in field '{field}' is a {kind} image; send one of {', '.join(FORMATS)}.")
        if width * height > self.max_pixels:
            raise RequestError(413, f"The image in field '{field}' has {width}×{height} pixels; the limit is "
                                    f"{self.max_pixels}.")
        import tensorflow as tf

        try:
            return self._decode(tf.constant(data)).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError):
            raise RequestError(400, f"The image in field '{field}' is truncated or corrupt.") from None

    def _embed_arrays(self, images):
        return self.model.embed(np.asarray(images, dtype="uint8"))

    def embed(self, files):
        """Unit embeddings of uploaded files ``[(field, bytes)]``."""
        images = np.stack([self.decode(data, field) for field, data in files])
        return self.embed_images(images)

    # -- gallery -------------------------------------------------------------
    def gallery(self):
        """The store's classes now (re-read only when some process has written it)."""
        with self._lock:
            version = self.store._connection.execute("PRAGMA data_version").fetchone()[0]
            if self._snapshot is None or version != self._version:
                self._snapshot, self._version = self.store.snapshot(), version
            return self._snapshot

    def classes(self):
        with self._lock:
            return self.store.classes()

    def enrol(self, name, files, replace=False):
        from arcface_keras.toolkit.gallery_store import ClassExists

        if not name or not name.strip():
            raise RequestError(422, "Field 'name' must be a non-empty class name.")
        if not files:
            raise RequestError(422, "Field 'images' must hold one or more image files.")
        if len(files) > MAX_FILES:
            raise RequestError(413, f"{len(files)} images in one enrolment; the limit is {MAX_FILES}.")
        with self._lock:
            if not replace and name in {existing for existing, _ in self.store.classes()}:
                raise RequestError(409, f"Class {name!r} is already enrolled; send replace=true to re-enrol it.")
        embeddings = self.embed(files)  # outside the lock: the model is the slow part
        with self._lock:
            try:
                count = self.store.enrol({name: embeddings}, replace=replace)[name]
            except ClassExists:  # enrolled by another writer meanwhile
                raise RequestError(409, f"Class {name!r} is already enrolled; send replace=true to re-enrol it.") from None
            self._snapshot = None
        return count

    def delete(self, name):
        from arcface_keras.toolkit.gallery_store import UnknownClass

        with self._lock:
            try:
                self.store.delete(name)
            except UnknownClass:
                raise RequestError(404, f"No class {name!r} is enrolled.") from None
            self._snapshot = None

    def threshold(self, threshold=None, far=None, default=None):
        """The cosine to accept at, as the commands decide it (`ExportedModel.threshold`)."""
        try:
            accept = self.model.threshold(far, threshold)
        except UserInputError:
            if threshold is not None and far is not None:
                raise RequestError(400, "Send threshold or far, not both.") from None
            if threshold is not None:
                raise RequestError(400, f"Field 'threshold' must be a cosine in [-1, 1] (received {threshold}).") from None
            rates = sorted((self.model.calibration or {}).get("thresholds", {}))
            raise RequestError(400, f"Field 'far' must be one of the run's calibrated rates {rates} "
                                    f"(received {far}).") from None
        if accept is None and default is not None:
            accept = (self.model.calibration or {}).get("thresholds", {}).get(default)
        return accept

    def identify(self, data, top_k=5, threshold=None, far=None):
        from arcface_keras.toolkit.gallery import decide, search

        if top_k < 1:
            raise RequestError(422, f"Field 'top_k' must be at least 1 (received {top_k}).")
        accept = self.threshold(threshold, far)
        gallery = self.gallery()
        if not gallery.class_names:
            raise RequestError(409, "No class is enrolled yet; enrol one first (POST /enrol).")
        embedding = self.embed([("image", data)])
        indices, scores = search(gallery.centers, embedding, top_k)
        label = decide(gallery.class_names, indices, scores, accept)[0]
        return {"label": label, "score": float(scores[0, 0]), "threshold": accept,
                "top_k": [{"label": gallery.class_names[i], "score": float(s)} for i, s in zip(indices[0], scores[0])]}

    def verify(self, first, second, threshold=None, far=None):
        accept = self.threshold(threshold, far, default="eer")
        a, b = self.embed([("image1", first), ("image2", second)])
        cosine = float(a @ b)
        return {"cosine": cosine, "same": None if accept is None else cosine >= accept, "threshold": accept}


def create_app(service):
    """The FastAPI application over `service`."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="arcface-keras", description="Enrol classes, identify and verify images with an ArcFace "
                  "model's embeddings.", version=_version())

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        if first.get("type") == "missing":
            message = f"Field '{where[-1]}' is required." if where else "A required field is missing."
        elif first.get("type") == "json_invalid" or "json" in str(first.get("type", "")):
            message = "The request body is not valid JSON; send a multipart form."
        else:
            message = f"Field '{'.'.join(where) or 'body'}': {first.get('msg', 'invalid value')}."
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": f"{error.detail}."}, status_code=error.status_code)

    async def read(upload, field):
        data = await upload.read(service.max_bytes + 1)
        if len(data) > service.max_bytes:
            raise RequestError(413, f"The file in field '{field}' is larger than {service.max_bytes} bytes.")
        return data

    @app.get("/health")
    def health():
        return {"status": "ok", "classes": len(service.classes())}

    @app.get("/classes")
    def classes():
        return {"classes": [{"name": name, "images": images} for name, images in service.classes()]}

    @app.post("/enrol")
    async def enrol(name: str = Form(...), images: list[UploadFile] = File(...), replace: bool = Form(False)):
        files = [("images", await read(upload, "images")) for upload in images]
        count = await _in_thread(service.enrol, name, files, replace)
        return {"name": name, "images": count}

    @app.delete("/classes/{name}")
    def delete(name: str):
        service.delete(name)
        return {"deleted": name}

    @app.post("/identify")
    async def identify(image: UploadFile = File(...), top_k: int = Form(5), threshold: float | None = Form(None),
                       far: float | None = Form(None)):
        data = await read(image, "image")
        return await _in_thread(service.identify, data, top_k, threshold, far)

    @app.post("/verify")
    async def verify(image1: UploadFile = File(...), image2: UploadFile = File(...),
                     threshold: float | None = Form(None), far: float | None = Form(None)):
        first, second = await read(image1, "image1"), await read(image2, "image2")
        return await _in_thread(service.verify, first, second, threshold, far)

    @app.post("/embed")
    async def embed(image: UploadFile = File(...)):
        data = await read(image, "image")
        embedding = await _in_thread(service.embed, [("image", data)])
        return {"embedding": [float(v) for v in embedding[0]]}

    @app.get("/", response_class=HTMLResponse)
    def page():
        with open(os.path.join(os.path.dirname(__file__), "static", "index.html"), encoding="utf-8") as file:
            return file.read()

    return app


async def _in_thread(function, *args):
    """Run blocking work (the model, the store) off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


def _version():
    from arcface_keras import __version__

    return __version__
