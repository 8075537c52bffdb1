"""The article's claims, numbered as in the project's notes; experiments cite them by id."""

from __future__ import annotations

ARTICLE = "docker save与docker export的区别 (2017-08-26; Docker 17.07.0-ce-rc1, API 1.31)"

CLAIMS: dict[str, str] = {
    "C1": "docker save writes one or more images into one tar; docker load -i restores all of them.",
    "C2": "docker save also accepts a container and then saves the image behind it.",
    "C3": "docker load overwrites images already present under the same names.",
    "C4": "Use case: carry a docker-compose application's images to a host without internet: save, copy, load.",
    "C5": "docker export takes only a container, not an image, and writes its filesystem as a tar.",
    "C6": "docker import makes an image (not a container), can name it REPO[:TAG], and takes the name "
          "from an existing image, which stays reachable only by id.",
    "C7": "Use case: export a customised container to make and share a base image.",
    "C8": "save is for images, export for containers; load and import both give images; "
          "load cannot rename, import can.",
    "C9": "docker load of an export archive fails.",
    "C10": "docker import of a save archive succeeds, but the image cannot run ('No command specified').",
    "C11": "The export tar is smaller than the save tar because the save tar holds every layer and layers "
           "repeat files; merging the layers gives about the export's content.",
    "C12": "docker load needs a layered archive; docker import copies in whatever files the tar holds.",
    "C13": "docker import is like docker commit (both take --change and --message): import makes a one-layer "
           "image from outside files, commit adds one layer on top of the image's layers.",
}

# Claims this suite does not test (shown in the report instead of a verdict); every claim is tested now.
NOT_TESTED: dict[str, str] = {}

VERDICTS = ("confirmed", "refuted", "version-dependent", "not testable")
