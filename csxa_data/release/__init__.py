"""Read the CSXA release as published: the workbook, the PNG and JSON sets (zips or folders), their
file names and landmarks, and the films themselves, each checked as hostile input."""
