"""Keep storage in step with the database.

The one accepted signal: a post_delete receiver is what makes every delete
(one recording, a bulk admin action, a call cascading to its recordings)
remove the audio file from storage too.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Recording

logger = logging.getLogger(__name__)


@receiver(post_delete, sender=Recording)
def delete_recording_file(sender, instance: Recording, **kwargs) -> None:
    """Delete the file once the row's deletion is committed, never before."""
    storage, name = instance.file.storage, instance.file.name
    if not name:
        return

    def delete_file() -> None:
        try:
            storage.delete(name)
        except Exception:  # a storage error must not undo the delete
            logger.exception("could not delete recording file %s", name)

    transaction.on_commit(delete_file)
