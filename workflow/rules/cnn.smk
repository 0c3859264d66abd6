# Rules of this stage are being written; see the stage's issue.
