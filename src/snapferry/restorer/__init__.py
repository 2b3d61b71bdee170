"""The restore pipeline under actions/restore.py: plan (planner), journal, download and write.

planner.py decides what to delete and fetch (pure), downloader.py streams ranges into
the bounded buffer pool, writer.py puts them in place with the durability order the
README's "Crash safety" describes, and journal.py makes preallocated files resumable.
"""
