"""Share an adapter: a model card made from its run, and the upload to the Hugging Face Hub.

`card` (the model card), `__main__` (the token, the staged folder, the push). Command:
`python -m helpers.publish --adapter DIR --repo USER/NAME`.
"""
