"""The OHIF viewer (prebuilt dist/ from npm) served on 127.0.0.1, in front of a real Orthanc's DICOMweb.

One origin serves both: the viewer's files (with the single-page-app fallback to
index.html and our ``app-config.js``) and ``/dicom-web/*`` forwarded to Orthanc,
so the browser needs no CORS.  ``tests/setup/install_viewer_deps.sh`` fetches
the viewer into ``tests/viewer/.node/``.
"""

from __future__ import annotations

import http.client
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.servers import REPO, OrthancServer

NODE_DIR = REPO / "tests" / "viewer" / ".node"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

APP_CONFIG = """window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {
      friendlyName: 'Orthanc (noduled test)',
      name: 'orthanc',
      wadoUriRoot: '/dicom-web',
      qidoRoot: '/dicom-web',
      wadoRoot: '/dicom-web',
      qidoSupportsIncludeField: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: false,
      supportsWildcard: true,
      staticWado: false,
      singlepart: 'bulkdata,video',
      dicomUploadEnabled: false,
      omitQuotationForMultipartRequest: true,
      bulkDataURI: { enabled: true },
    },
  }],
};
"""


def ohif_dist() -> Path:
    """The installed viewer's dist/ (run tests/setup/install_viewer_deps.sh first)."""
    version_file = NODE_DIR / "OHIF_VERSION"
    if not version_file.exists():
        raise RuntimeError("OHIF is not installed: run tests/setup/install_viewer_deps.sh (make test does)")
    dist = NODE_DIR / f"ohif-{version_file.read_text().strip()}" / "dist"
    if not (dist / "index.html").exists():
        raise RuntimeError(f"{dist} has no index.html: re-run tests/setup/install_viewer_deps.sh")
    return dist


def ohif_version() -> str:
    return (NODE_DIR / "OHIF_VERSION").read_text().strip()


def dicomweb_orthanc(workdir: Path) -> OrthancServer:
    """A real Orthanc with its DICOMweb plugin (Debian orthanc-dicomweb) on 127.0.0.1."""
    if not DICOMWEB_PLUGIN.exists():
        raise RuntimeError(f"{DICOMWEB_PLUGIN} is missing: install the Debian package orthanc-dicomweb")
    server = OrthancServer(workdir)
    server.config["Plugins"] = [str(DICOMWEB_PLUGIN)]
    server.config["DicomWeb"] = {
        "Enable": True,
        "Root": "/dicom-web/",
        "EnableWado": True,
        "StudiesMetadata": "Full",
        "SeriesMetadata": "Full",
    }
    return server


class ViewerServer:
    """Serves OHIF's dist/ and forwards /dicom-web/ to Orthanc, on one 127.0.0.1 port."""

    def __init__(self, dist: Path, orthanc_http_port: int) -> None:
        self.dist = dist.resolve()
        self.orthanc_port = orthanc_http_port
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ohif-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ViewerServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection("127.0.0.1", server.orthanc_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    rsp = conn.getresponse()
                    data = rsp.read()
                    self.send_response(rsp.status)
                    for k, v in rsp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            def _static(self) -> None:
                path = self.path.split("?", 1)[0].split("#", 1)[0]
                if path == "/app-config.js":
                    data, ctype = APP_CONFIG.encode(), "application/javascript"
                else:
                    target = (server.dist / path.lstrip("/")).resolve()
                    if server.dist not in target.parents or not target.is_file():
                        target = server.dist / "index.html"  # single-page app routes (/viewer?...)
                    data = target.read_bytes()
                    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                    if target.suffix == ".wasm":
                        ctype = "application/wasm"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/dicom-web/"):
                    self._forward()
                else:
                    self._static()

            def do_POST(self) -> None:
                if self.path.startswith("/dicom-web/"):
                    self._forward()
                else:
                    self.send_error(405)

        return Handler
