include:
  - offline_repo.configured
