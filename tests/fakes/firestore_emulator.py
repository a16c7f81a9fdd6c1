"""Google's Firestore emulator (gcloud emulators firestore start): written by the firestore engineer."""

from __future__ import annotations

import pytest


class FirestoreEmulator:
    store_url = ""

    def start(self) -> FirestoreEmulator:
        pytest.skip("the Firestore emulator fixture is not written yet")

    def stop(self) -> None:
        pass

    def clear(self) -> None:
        pass
