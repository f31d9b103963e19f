# OpenStack tosca-parser as the benchmark's peer: reads template paths from stdin, one a line,
# parses and validates each (ToscaTemplate) and answers one JSON line per path:
# {"file", "valid", "seconds", "error"}. Only the ToscaTemplate call is timed. One process for
# the whole run, so the bench can alternate it with Lapis (both meet the same neighbours).
import json, logging, sys, time

logging.disable(logging.CRITICAL)
from toscaparser.tosca_template import ToscaTemplate  # noqa: E402

for line in sys.stdin:
    path = line.strip()
    if not path:
        continue
    valid, error = True, None
    started = time.perf_counter()
    try:
        ToscaTemplate(path)
    except Exception as exc:  # tosca-parser raises ValidationError (or others) on invalid templates
        valid, error = False, (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    seconds = time.perf_counter() - started
    print(json.dumps({"file": path, "valid": valid, "seconds": seconds, "error": error}), flush=True)
