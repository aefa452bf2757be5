"""Settings: the model (DICOM Cast's names), the layered sources and the loader."""

from dicomcast.config.loader import LoadedSettings, load_settings
from dicomcast.config.settings import (
    AuthenticationSettings,
    AuthenticationType,
    ServerType,
    Settings,
    SourceSettings,
)

__all__ = [
    "AuthenticationSettings",
    "AuthenticationType",
    "LoadedSettings",
    "ServerType",
    "Settings",
    "SourceSettings",
    "load_settings",
]
