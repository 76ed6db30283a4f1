"""Stand-in for Colab's `google.colab` (tests only; see tests/colab_standin/README.md)."""
from google.colab import drive, userdata  # noqa: F401
