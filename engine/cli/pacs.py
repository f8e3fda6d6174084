"""``python -m engine pacs find|get|put URL ...``: search, retrieve and store over DICOMweb.

URL is the server's DICOMweb root, e.g. ``https://pacs.example.org/dicom-web``
(Orthanc: ``http://host:8042/dicom-web``).

  pacs find URL [--patient NAME_OR_ID] [--date 2020-03-01..2020-06-30] [--modality CT] [--json]
  pacs get URL STUDY_UID [--series SERIES_UID] --out DIR     -> DIR/<study>/<series>/*.dcm
  pacs put URL FILE_OR_FOLDER... [--study UID]              (e.g. a DICOM SEG from `export`)
  pacs put URL report.pdf --reference SCAN                  (a report from `report`, as Encapsulated PDF)

Authentication: ``--user NAME`` with the password in $LUNGLENS_PACS_PASSWORD (or typed
at the prompt), or $LUNGLENS_PACS_USERNAME + $LUNGLENS_PACS_PASSWORD, or a bearer token
in $LUNGLENS_PACS_TOKEN. Secrets are never taken on the command line (they would show
in the process list and the shell history) and never printed. TLS certificates are
always verified; give the hospital's CA bundle with ``--ca-bundle`` or
$LUNGLENS_PACS_CA_BUNDLE.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys

NAME = "pacs"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="search, retrieve and store studies on a PACS (DICOMweb)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("url", help="DICOMweb root URL of the PACS")
        q.add_argument("--user", help="user name for basic authentication (password: $LUNGLENS_PACS_PASSWORD "
                                      "or prompt)")
        q.add_argument("--ca-bundle", metavar="PEM", help="certificate authorities to trust for https://")
        q.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
        q.add_argument("--json", action="store_true", help="print the result as JSON")

    f = sub.add_parser("find", help="search for studies (QIDO-RS)")
    common(f)
    f.add_argument("--patient", default="", help="patient name (prefix, * and ? wildcards) or ID")
    f.add_argument("--date", default="", help="study date or range: 2020-03-01, 2020-03-01..2020-06-30, "
                                              "2020-03-01.. or ..2020-06-30")
    f.add_argument("--modality", default="", help="a modality in the study, e.g. CT")
    f.add_argument("--accession", default="", help="accession number")
    f.add_argument("--limit", type=int, default=100, help="at most this many studies (default 100)")
    f.add_argument("--offset", type=int, default=0, help="skip this many matches first (the next page: "
                                                         "--offset LIMIT)")
    f.add_argument("--no-series", action="store_true", help="do not list each study's series")
    f.set_defaults(func=run_find)

    g = sub.add_parser("get", help="retrieve a study or one series into a folder (WADO-RS)")
    common(g)
    g.add_argument("study", help="Study Instance UID (from `pacs find`)")
    g.add_argument("--series", help="only this Series Instance UID")
    g.add_argument("--out", required=True, help="folder; series land in OUT/<study>/<series>/")
    g.add_argument("--refresh", action="store_true", help="retrieve again even when already in OUT")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run_get)

    s = sub.add_parser("put", help="store DICOM files on the PACS (STOW-RS)")
    common(s)
    s.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders of them")
    s.add_argument("--study", help="store into this Study Instance UID only (the server refuses instances of "
                                   "another study)")
    s.add_argument("--reference", metavar="SCAN", help="the DICOM scan whose study a PDF report joins (PDF "
                                                       "files are sent as Encapsulated PDF)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_put)


def _server(args: argparse.Namespace):
    from ..pacs import PacsAuth, PacsServer
    from ..pacs.server import ENV_PASSWORD

    if not getattr(args, "verbose", False):
        # urllib3 warns on each retry with the request's URL, which holds the search
        # terms (patient names): keep them off the terminal unless -v asks for it.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    auth = None
    if args.user:
        password = os.environ.get(ENV_PASSWORD, "")
        if not password:
            if not sys.stdin.isatty():
                from ..pacs import PacsError
                raise PacsError(f"--user {args.user} needs a password: set ${ENV_PASSWORD} (it is not taken on "
                                "the command line).")
            password = getpass.getpass(f"PACS password for {args.user}: ")
        auth = PacsAuth.basic(args.user, password)
    return PacsServer.from_env(args.url, auth=auth, verify=args.ca_bundle, timeout=args.timeout)


def _bar(label: str, quiet: bool):
    from .predict import ProgressBar
    return ProgressBar(label, enabled=not quiet and sys.stderr.isatty())


def run_find(args: argparse.Namespace) -> int:
    from ..pacs import PacsClient, StudyQuery, parse_date_range

    lo, hi = parse_date_range(args.date) if args.date.strip() else (None, None)
    query = StudyQuery(patient=args.patient, date_from=lo, date_to=hi, modality=args.modality,
                       accession=args.accession, limit=args.limit, offset=max(args.offset, 0))
    with PacsClient(_server(args)) as client:
        studies = client.find(query, with_series=not args.no_series)
    if args.json:
        print(json.dumps({"server": client.server.url, "studies": [s.to_dict() for s in studies]}, indent=1))
        return 0
    if not studies:
        print(f"no study on {client.server.url} matches")
        return 0
    if len(studies) >= args.limit:
        print(f"({len(studies)} studies from match {query.offset + 1}: there may be more; narrow the search, "
              f"raise --limit or ask the next page with --offset {query.offset + args.limit})", file=sys.stderr)
    for st in studies:
        mods = "/".join(st.modalities) or "?"
        print(f"{st.date or '????-??-??'}  {st.patient_name or '-'} ({st.patient_id or '-'})  {mods}  "
              f"{st.description or '-'}  series={st.n_series if st.n_series is not None else '?'} "
              f"images={st.n_instances if st.n_instances is not None else '?'}")
        print(f"  study {st.study_uid}")
        for se in st.series:
            print(f"    series {se.series_uid}  #{se.number if se.number is not None else '-'} {se.modality} "
                  f"{se.description or '-'}  images={se.n_instances if se.n_instances is not None else '?'}")
    return 0


def run_get(args: argparse.Namespace) -> int:
    from ..pacs import PacsClient

    with PacsClient(_server(args)) as client:
        bar = _bar("retrieving", args.quiet)
        try:
            if args.series:
                folders = [client.retrieve_series(args.study, args.series, args.out, refresh=args.refresh,
                                                  progress=bar)]
            else:
                folders = client.retrieve_study(args.study, args.out, refresh=args.refresh, progress=bar)
        finally:
            bar.close()
    counts = [sum(1 for p in f.iterdir() if p.suffix == ".dcm") for f in folders]
    if args.json:
        print(json.dumps({"server": client.server.url, "study_uid": args.study,
                          "series": [{"folder": str(f), "instances": n} for f, n in zip(folders, counts)]},
                         indent=1))
    else:
        for f, n in zip(folders, counts):
            print(f"{f}  ({n} images)")
    return 0


def run_put(args: argparse.Namespace) -> int:
    from ..pacs import PacsClient, PacsError
    from ..pacs.documents import encapsulated_pdf

    items: list = [f for f in args.files if not f.lower().endswith(".pdf")]
    pdfs = [f for f in args.files if f.lower().endswith(".pdf")]
    if pdfs and not args.reference:
        raise PacsError("A PDF report needs --reference SCAN: the DICOM scan whose patient and study it joins.")
    items += [encapsulated_pdf(p, args.reference) for p in pdfs]
    with PacsClient(_server(args)) as client:
        bar = _bar("storing", args.quiet)
        try:
            result = client.store(items, study_uid=args.study, progress=bar)
        finally:
            bar.close()
    if args.json:
        print(json.dumps({"server": client.server.url, "stored": len(result.stored), "studies": result.studies,
                          "sop_instance_uids": result.stored, "seconds": round(result.seconds, 3)}, indent=1))
    else:
        print(f"stored {len(result.stored)} instances on {client.server.url} "
              f"(study {', '.join(result.studies)}) in {result.seconds:.1f} s")
    return 0
