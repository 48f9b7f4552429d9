"""`python -m app`: serve the playground with uvicorn (HOST and PORT from the environment)."""

from app.server import main

main()
