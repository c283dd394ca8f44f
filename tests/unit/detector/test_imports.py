from __future__ import annotations

import subprocess
import sys


def test_the_core_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import detector.bundle, detector.incidents, detector.readings, detector.scaling\n"
        "import detector.onnx_runtime, detector.scoring, detector.testing, detector.windows\n"
        "heavy = ('tensorflow', 'keras', 'onnxruntime', 'onnx', 'confluent_kafka', 'prometheus_client')\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
