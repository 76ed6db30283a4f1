"""Stand-in for google.colab.userdata (Colab's secret store): $COLAB_STANDIN_SECRET_<NAME>."""
import os


class SecretNotFoundError(Exception):
    """The secret does not exist (Colab's own class has this name)."""


class NotebookAccessError(Exception):
    """Notebook access to the secret is off (Colab's own class has this name)."""


def get(key):
    """The secret's value, or SecretNotFoundError."""
    value = os.environ.get(f"COLAB_STANDIN_SECRET_{key}")
    if value is None:
        raise SecretNotFoundError(f"Secret {key} does not exist.")
    return value
