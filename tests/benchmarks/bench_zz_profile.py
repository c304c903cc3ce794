import cProfile, pstats, io, os
import pytest
from .bench_pages import pages_data, _client  # noqa

@pytest.mark.django_db
def test_profile(pages_data):
    path = os.environ.get("PROF_PATH", "/t/bench-pages/incidents/{detail}/").format(detail=pages_data.detail)
    client = _client(pages_data, "console")
    for _ in range(3):
        assert client.get(path).status_code == 200
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(10):
        client.get(path)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(60)
    print(s.getvalue())
