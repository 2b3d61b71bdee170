"""The restore pipeline under actions/restore.py: plan (planner), journal, download and write.

planner.py decides what to delete and fetch (pure), downloader.py streams ranges into
the bounded buffer pool, bytepath.py picks each file's byte path once, writer.py puts
the bytes in place, session.py owns the durability order (marker, syncs, renames) the
docs/crash-safety.md describes, and journal.py makes preallocated files resumable.
"""
