"""``python -m pasl download``: served by a local imitation of Drive, FLAME's server and plain file hosts.

No network: ``download_server.Server`` answers like the real services (Drive's small-file answer,
its virus-scan confirmation form, its quota page and folder view; FLAME's login; ``Range``; dropped
connections). The served weights are the tests' synthetic files in the exact official formats, so the
strict loads the command runs are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import zipfile
from pathlib import Path

import pytest

import pasl.download.fetch
import pasl.download.sources as sources
from download_server import FakeServices, Server
from pasl.__main__ import main as cli
from pasl.download import URL_ENVS, download, drive, flame, transfer
from pasl.errors import DownloadError

DECA_ID, PAE_ID, AEG_FOLDER = sources.DECA_ARCHIVE, sources.PAE_ARCHIVE, sources.AEG_DEMO_FOLDER
AEG_ID, OPTIMS_ID, SUBFOLDER_ID = "1AegCheckpointFileId00000000", "1OptimiserStatesFileId0000000", "1SubFolderId000000000000000"
FLAME_LOGIN = ("someone@example.org", "s3cret pass&word")


@pytest.fixture(autouse=True)
def _no_overrides_from_the_caller(monkeypatch):
    """Every test chooses its own hosts and login; the caller's variables are ignored."""
    for name in (*URL_ENVS, flame.USERNAME_ENV, flame.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve(monkeypatch, services: FakeServices) -> Server:
    server = Server(services)
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    return server


@pytest.fixture()
def refused_port():
    """A local port that refuses connections (bound, so no one else takes it, but not listening)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def _no_files_left(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- the transfer


def _payload(tmp_path: Path, size: int = 3 << 20) -> Path:
    path = tmp_path / "served.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_drive_sends_a_small_file_at_once(tmp_path, monkeypatch):
    served = _payload(tmp_path)
    with _serve(monkeypatch, FakeServices(drive_files={"1SmallFile": ("small.bin", served)})) as server:
        session = transfer.make_session()
        size = transfer.fetch_into(tmp_path / "small.bin.part", lambda offset: drive.open_file(session, "1SmallFile", offset))
    assert size == served.stat().st_size and (tmp_path / "small.bin.part").read_bytes() == served.read_bytes()
    assert [r[1] for r in server.services.requests] == ["/drive/uc?export=download&id=1SmallFile"]


def test_drive_large_file_goes_through_the_confirmation_form(tmp_path, monkeypatch):
    served = _payload(tmp_path)
    services = FakeServices(drive_files={"1LargeFile": ("large.bin", served)}, large={"1LargeFile"})
    with _serve(monkeypatch, services) as server:
        session = transfer.make_session()
        transfer.fetch_into(tmp_path / "large.part", lambda offset: drive.open_file(session, "1LargeFile", offset))
    assert (tmp_path / "large.part").read_bytes() == served.read_bytes()
    paths = [r[1] for r in server.services.requests]
    assert paths == ["/drive/uc?export=download&id=1LargeFile",
                     f"/drive/download?id=1LargeFile&export=download&confirm=t&uuid={services.uuids['1LargeFile']}"]


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, monkeypatch):
    served = _payload(tmp_path)
    cut = 1_234_567
    services = FakeServices(drive_files={"1LargeFile": ("large.bin", served)}, large={"1LargeFile"}, drops={"large.bin": cut})
    with _serve(monkeypatch, services) as server:
        session = transfer.make_session()
        transfer.fetch_into(tmp_path / "large.part", lambda offset: drive.open_file(session, "1LargeFile", offset))
    assert (tmp_path / "large.part").read_bytes() == served.read_bytes()
    ranges = [r[2] for r in server.services.requests if r[1].startswith("/drive/download")]
    assert ranges == ["", f"bytes={cut}-"]


def test_a_part_file_from_an_earlier_run_is_continued(tmp_path, monkeypatch):
    served = _payload(tmp_path)
    part = tmp_path / "file.part"
    part.write_bytes(served.read_bytes()[:1_000_000])
    with _serve(monkeypatch, FakeServices(files={"file.bin": served})) as server:
        session = transfer.make_session()
        transfer.fetch_into(part, lambda offset: transfer.open_url(session, f"{server.url}/files/file.bin", offset=offset))
    assert part.read_bytes() == served.read_bytes()
    assert [r[2] for r in server.services.requests] == ["bytes=1000000-"]


def test_a_server_that_ignores_range_restarts_the_file(tmp_path, monkeypatch):
    served = _payload(tmp_path, 100_000)
    part = tmp_path / "file.part"
    part.write_bytes(b"x" * 5000)  # not a prefix of the file: only a restart gives the right bytes

    with _serve(monkeypatch, FakeServices(files={"file.bin": served})) as server:
        session = transfer.make_session()
        transfer.fetch_into(part, lambda offset: transfer.open_url(session, f"{server.url}/files/file.bin"))  # no Range: a 200
    assert part.read_bytes() == served.read_bytes()


def test_a_complete_part_is_not_fetched_again_and_a_stale_one_is_restarted(tmp_path, monkeypatch):
    served = _payload(tmp_path, 200_000)
    complete, stale = tmp_path / "complete.part", tmp_path / "stale.part"
    complete.write_bytes(served.read_bytes())
    stale.write_bytes(b"y" * 300_000)  # longer than the file: not a prefix of it
    with _serve(monkeypatch, FakeServices(files={"file.bin": served})) as server:
        session = transfer.make_session()
        url = f"{server.url}/files/file.bin"
        assert transfer.fetch_into(complete, lambda offset: transfer.open_url(session, url, offset=offset)) == 200_000
        assert [r[2] for r in server.services.requests] == ["bytes=200000-"]  # answered 416 "bytes */200000"
        transfer.fetch_into(stale, lambda offset: transfer.open_url(session, url, offset=offset))
    assert complete.read_bytes() == served.read_bytes() == stale.read_bytes()
    assert [r[2] for r in server.services.requests[1:]] == ["bytes=300000-", ""]


def test_a_run_stopped_while_checking_keeps_the_complete_part(tmp_path, monkeypatch):
    from flame_synthetic import write_landmark_embedding

    served = write_landmark_embedding(tmp_path / "landmark_embedding.npy")
    monkeypatch.setitem(sources.EXPECTED_SHA256, "landmark_embedding.npy", _sha256(served))
    monkeypatch.setattr(pasl.download.fetch, "plan", lambda kind: sources.plan(kind)[1:2])  # deca's embedding only
    real_load = pasl.download.checks.strict_load

    def interrupted(*args):
        raise KeyboardInterrupt

    with _serve(monkeypatch, FakeServices(files={"landmark_embedding.npy": served})) as server:
        monkeypatch.setattr(pasl.download.checks, "strict_load", interrupted)
        with pytest.raises(KeyboardInterrupt):
            download("deca", tmp_path / "w")
        assert _no_files_left(tmp_path / "w") == ["landmark_embedding.npy.part"]
        monkeypatch.setattr(pasl.download.checks, "strict_load", real_load)
        assert download("deca", tmp_path / "w").downloaded == [tmp_path / "w" / "landmark_embedding.npy"]
    assert [r[2] for r in server.services.requests] == ["", f"bytes={served.stat().st_size}-"]  # nothing sent twice
    assert _no_files_left(tmp_path / "w") == ["downloads.json", "landmark_embedding.npy"]


def test_a_flame_answer_that_is_no_zip_is_not_kept(tmp_path, monkeypatch, capsys):
    page = tmp_path / "FLAME2020.zip"
    page.write_bytes(b"Please accept the FLAME licence first.")  # sent as a file, not as a web page
    monkeypatch.setenv(flame.USERNAME_ENV, FLAME_LOGIN[0])
    monkeypatch.setenv(flame.PASSWORD_ENV, FLAME_LOGIN[1])
    with _serve(monkeypatch, FakeServices(flame=(*FLAME_LOGIN, page))):
        line = _cli_error(capsys, ["download", "flame", "--to", str(tmp_path / "w")])
    assert line.startswith("error: could not download generic_model.pkl: the download (38 bytes) is not the zip archive FLAME2020.zip. ")
    assert line.endswith("; nothing was kept.") and _no_files_left(tmp_path / "w") == []


def test_folder_view_lists_files_and_subfolders(tmp_path, monkeypatch):
    listing = [(AEG_ID, "204000_nets_ema.ckpt", False), (OPTIMS_ID, "204000_optims.ckpt", False), (SUBFOLDER_ID, "old", True)]
    with _serve(monkeypatch, FakeServices(folders={AEG_FOLDER: listing})):
        entries = drive.list_folder(transfer.make_session(), AEG_FOLDER)
    assert [(e.id, e.name, e.is_folder) for e in entries] == listing
    assert sources.folder_targets([e.name for e in entries]) == ["204000_nets_ema.ckpt"]
    assert sources.folder_targets(["1_nets.ckpt", "1_optims.ckpt"]) == ["1_nets.ckpt"]  # no EMA file: the training one


def test_checkpoints_in_a_sub_folder_are_found(tmp_path, monkeypatch):
    folders = {AEG_FOLDER: [("1ReadmeFileId000000000", "readme.txt", False), (SUBFOLDER_ID, "demo", True)],
               SUBFOLDER_ID: [(AEG_ID, "204000_nets_ema.ckpt", False), (OPTIMS_ID, "204000_optims.ckpt", False)]}
    with _serve(monkeypatch, FakeServices(folders=folders)):
        jobs = pasl.download.fetch._Run(tmp_path, print).expand(sources.Source("drive-folder", AEG_FOLDER))
    assert jobs == [(sources.Source("drive", AEG_ID, folder=AEG_FOLDER), [sources.Target("aeg", "204000_nets_ema.ckpt")])]


def test_a_folder_without_a_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    with _serve(monkeypatch, FakeServices(folders={AEG_FOLDER: [("1ReadmeFileId000000000", "readme.txt", False)]})):
        line = _cli_error(capsys, ["download", "aeg", "--to", str(tmp_path)])
    assert line == (
        "error: could not download the AEG checkpoint (*_nets_ema.ckpt): the folder lists no AEG checkpoint (*_nets_ema.ckpt), "
        f"only readme.txt. By hand: download the AEG checkpoint (*_nets_ema.ckpt) from {drive.folder_url(AEG_FOLDER)} in a "
        f"browser and put it in {tmp_path}; nothing was kept."
    )


def test_importing_the_command_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, pasl.download, pasl.__main__; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_confirmation_page_variants():
    older = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbCd&amp;id=1X">Download anyway</a>'
    assert drive.next_url(older, "https://drive.google.com/uc?id=1X") == "https://drive.google.com/uc?export=download&confirm=AbCd&id=1X"
    with pytest.raises(DownloadError, match="Google Drive refused it: Sorry, the file you have requested does not exist."):
        drive.next_url('<p class="uc-error-subcaption">Sorry, the file you have requested does not exist.</p>', "")
    with pytest.raises(DownloadError, match="no longer be shared publicly"):
        drive.next_url("<html><title>Sign in - Google Accounts</title></html>", "")


# ---------------------------------------------------------------------------------------------- refusals: one line, exit 2


def _cli_error(capsys, argv) -> str:
    assert cli(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err
    return lines[-1]


def test_offline_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, refused_port):
    monkeypatch.setenv("PASL_DRIVE_BASE_URL", f"http://127.0.0.1:{refused_port}")
    line = _cli_error(capsys, ["download", "deca", "--to", str(tmp_path / "w")])
    assert line.startswith(f"error: could not download deca_model.tar: no connection to 127.0.0.1:{refused_port} (")
    assert "are you offline?" in line
    assert f"By hand: download {drive.view_url(DECA_ID)} in a browser, unzip it and put deca_model.tar in {tmp_path / 'w'}" in line
    assert line.endswith("; nothing was kept.")
    assert not (tmp_path / "w").exists()  # not even an empty folder


def test_drive_quota_page_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pasl.download.fetch, "model_folder", lambda: tmp_path / "default")  # no --to: the discovery folder
    with _serve(monkeypatch, FakeServices(quota={DECA_ID})):
        line = _cli_error(capsys, ["download", "deca"])
    assert "Google Drive refuses it for now: too many users have downloaded this file recently" in line
    assert f"put deca_model.tar in {tmp_path / 'default'}" in line and drive.view_url(DECA_ID) in line
    assert _no_files_left(tmp_path / "default") == []


def test_wrong_flame_login_is_one_line_without_the_password(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "FLAME2020.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("generic_model.pkl", b"never sent")
    monkeypatch.setenv(flame.USERNAME_ENV, FLAME_LOGIN[0])
    monkeypatch.setenv(flame.PASSWORD_ENV, "wrong password")
    with _serve(monkeypatch, FakeServices(flame=(*FLAME_LOGIN, archive))) as server:
        line = _cli_error(capsys, ["download", "flame", "--to", str(tmp_path / "w")])
    assert "the FLAME server did not accept the username and password" in line
    assert f"By hand: log in at {flame.FLAME_PAGE}, download FLAME2020.zip and put its generic_model.pkl in {tmp_path / 'w'}" in line
    assert "wrong password" not in line and "wrong+password" not in line
    assert [r[0] for r in server.services.requests] == ["POST"] and "password" not in server.services.requests[0][1]
    assert _no_files_left(tmp_path / "w") == []


def test_flame_without_login_or_terminal_says_which_variables(tmp_path, monkeypatch, capsys):
    with pytest.raises(DownloadError, match="set PASL_FLAME_USERNAME and PASL_FLAME_PASSWORD"):
        flame.credentials(env={}, interactive=False)
    monkeypatch.setattr(flame.sys.stdin, "isatty", lambda: False)
    line = _cli_error(capsys, ["download", "flame", "--to", str(tmp_path)])
    assert line == (
        "error: could not download generic_model.pkl: FLAME needs your own login at https://flame.is.tue.mpg.de (free "
        "registration): set PASL_FLAME_USERNAME and PASL_FLAME_PASSWORD, or run the command in a terminal to be asked. "
        f"By hand: log in at {flame.FLAME_PAGE}, download FLAME2020.zip and put its generic_model.pkl in {tmp_path}; "
        "nothing was kept."
    )


def test_download_all_without_a_flame_login_fetches_the_rest_first(tmp_path, monkeypatch):
    order = []
    monkeypatch.setattr(flame.sys.stdin, "isatty", lambda: False)
    monkeypatch.setattr(pasl.download.fetch._Run, "job", lambda self, source, targets: order.append(source.kind))
    download("all", tmp_path)
    assert order == ["drive-folder", "drive", "url", "url", "drive", "url", "url", "flame"]


def test_flame_prompt_hides_the_password(monkeypatch):
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "me@example.org ")
    monkeypatch.setattr(flame.getpass, "getpass", lambda prompt: asked.append(prompt) or "pw")
    login = flame.credentials(env={}, interactive=True)
    assert (login.username, login.password) == ("me@example.org", "pw") and "pw" not in repr(login)
    assert asked == ["FLAME username (e-mail): ", "FLAME password: "]
    assert flame.credentials(env={flame.USERNAME_ENV: "a", flame.PASSWORD_ENV: "b"}, interactive=False).password == "b"


def test_a_file_that_fails_its_strict_load_is_not_kept(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "landmark_embedding.npy"
    bad.write_bytes(b"<html>not an array</html>")
    monkeypatch.setitem(sources.EXPECTED_SHA256, "landmark_embedding.npy", "")  # no checksum: the loader decides
    monkeypatch.setattr(pasl.download.fetch, "plan", lambda kind: sources.plan(kind)[1:2])  # deca's embedding only
    with _serve(monkeypatch, FakeServices(files={"landmark_embedding.npy": bad})):
        line = _cli_error(capsys, ["download", "deca", "--to", str(tmp_path / "w")])
    assert line.startswith("error: could not download landmark_embedding.npy: the downloaded file is not a valid FLAME 68-landmark "
                           "embedding file (")
    assert line.endswith("; nothing was kept.")
    assert _no_files_left(tmp_path / "w") == []


def test_a_wrong_checksum_is_not_kept(tmp_path, monkeypatch, capsys):
    served = tmp_path / "landmark_embedding.npy"
    served.write_bytes(b"some other file")
    with _serve(monkeypatch, FakeServices(files={"landmark_embedding.npy": served})), pytest.raises(DownloadError) as err:
        pasl.download.fetch._Run(tmp_path / "w", print).job(*sources.plan("deca")[1])
    assert f"its sha256 is {_sha256(served)[:12]}…, expected {sources.EXPECTED_SHA256['landmark_embedding.npy'][:12]}…" in str(err.value)
    assert _no_files_left(tmp_path / "w") == []


def test_a_broken_file_already_there_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "face_alignment").mkdir()
    (tmp_path / "face_alignment" / "s3fd-619a316812.pth").write_bytes(b"half a file")
    line = _cli_error(capsys, ["download", "fan", "--to", str(tmp_path)])
    assert line.startswith(f"error: {tmp_path / 'face_alignment' / 's3fd-619a316812.pth'} is already there but is not a valid FAN")
    assert (tmp_path / "face_alignment" / "s3fd-619a316812.pth").read_bytes() == b"half a file"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="choose one of all, aeg, deca, flame, pae, fan"):
        download("arcface")


# ---------------------------------------------------------------------------------------------- everything, end to end


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    """Every served file, synthetic but in its official format, and the archives the services hold."""
    return write_official_files(tmp_path_factory.mktemp("served"))


def write_official_files(root: Path) -> tuple[Path, dict[str, Path]]:
    """The fixture's files under ``root`` (also used by ``test_readme_commands``)."""
    from deca_synthetic import write_deca_model
    from fan_synthetic import write_fan_files
    from flame_synthetic import ellipsoid_mesh, write_generic_model, write_landmark_embedding
    from pae_synthetic import write_ir50
    from pipeline_synthetic import write_obj
    from synthetic import write_nets_ema

    files = {
        "204000_nets_ema.ckpt": write_nets_ema(root / "204000_nets_ema.ckpt", seed=0),
        "deca_model.tar": write_deca_model(root / "deca_model.tar", seed=0),
        "landmark_embedding.npy": write_landmark_embedding(root / "landmark_embedding.npy"),
        "head_template.obj": write_obj(root / "head_template.obj", *ellipsoid_mesh()),
        "generic_model.pkl": write_generic_model(root / "generic_model.pkl"),
        "POE/FF/Backbone_IR_50_Epoch_80.pth": write_ir50(root / "POE" / "FF" / "Backbone_IR_50_Epoch_80.pth", seed=10),
    }
    fan = write_fan_files(root)
    files.update({f"face_alignment/{p.name}": p for p in fan.iterdir()})
    (root / "204000_optims.ckpt").write_bytes(b"optimiser states: never fetched")
    with zipfile.ZipFile(root / "deca.zip", "w") as z:  # as the PASL README's "DECA model": unzip into the main folder
        z.write(files["deca_model.tar"], "data/deca_model.tar")
        z.writestr("data/readme.txt", "other DECA data")
    with zipfile.ZipFile(root / "POE.zip", "w") as z:
        z.write(files["POE/FF/Backbone_IR_50_Epoch_80.pth"], "POE/FF/Backbone_IR_50_Epoch_80.pth")
        z.writestr("__MACOSX/POE/FF/._Backbone_IR_50_Epoch_80.pth", b"resource fork")
    with zipfile.ZipFile(root / "FLAME2020.zip", "w") as z:
        z.write(files["generic_model.pkl"], "generic_model.pkl")
        z.writestr("female_model.pkl", b"not extracted")
        z.writestr("Readme.pdf", b"%PDF")
    return root, files


def _services(root: Path, files: dict[str, Path]) -> FakeServices:
    return FakeServices(
        drive_files={AEG_ID: ("204000_nets_ema.ckpt", files["204000_nets_ema.ckpt"]),
                     OPTIMS_ID: ("204000_optims.ckpt", root / "204000_optims.ckpt"),
                     DECA_ID: ("data.zip", root / "deca.zip"), PAE_ID: ("POE.zip", root / "POE.zip")},
        large={AEG_ID, DECA_ID, PAE_ID},
        folders={AEG_FOLDER: [(AEG_ID, "204000_nets_ema.ckpt", False), (OPTIMS_ID, "204000_optims.ckpt", False)]},
        files={"landmark_embedding.npy": files["landmark_embedding.npy"], "head_template.obj": files["head_template.obj"],
               **{p.name: p for k, p in files.items() if k.startswith("face_alignment/")}},
        flame=(*FLAME_LOGIN, root / "FLAME2020.zip"),
        drops={"204000_nets_ema.ckpt": 50_000_000, "FLAME2020.zip": 7_000_000},
    )


def test_download_all_fetches_checks_and_records_every_file(official_files, tmp_path, monkeypatch, capsys, refused_port):
    root, files = official_files
    monkeypatch.setattr(sources, "PAE_FILES", {"FF": "POE/FF/Backbone_IR_50_Epoch_80.pth"})  # the archive holds one of the six
    for name in ("landmark_embedding.npy", "head_template.obj", *(k for k in files if k.startswith("face_alignment/"))):
        monkeypatch.setitem(sources.EXPECTED_SHA256, name, _sha256(files[name]))
    monkeypatch.setenv(flame.USERNAME_ENV, FLAME_LOGIN[0])
    monkeypatch.setenv(flame.PASSWORD_ENV, FLAME_LOGIN[1])
    target = tmp_path / "models" / "pasl"
    with _serve(monkeypatch, _services(root, files)) as server:
        assert cli(["download", "all", "--to", str(target)]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert sorted(result["downloaded"]) == sorted(str(target / k) for k in files) and result["already_there"] == []
    assert _no_files_left(target) == sorted([*files, "downloads.json"])  # no .part, no archive, no optimiser states
    for name, served in files.items():
        assert _sha256(target / name) == _sha256(served), name
    assert "downloading 204000_nets_ema.ckpt from 127.0.0.1" in err and f"checked and saved {target / 'generic_model.pkl'}" in err

    # both cut connections were resumed where they stopped (Drive's confirmed URL; FLAME's login POST)
    requests = server.services.requests
    assert [r[2] for r in requests if r[1].startswith(f"/drive/download?id={AEG_ID}")] == ["", "bytes=50000000-"]
    assert [(r[0], r[2]) for r in requests if r[1].startswith("/flame/")] == [("POST", ""), ("POST", "bytes=7000000-")]
    assert not any(OPTIMS_ID in r[1] for r in requests)

    manifest = json.loads((target / "downloads.json").read_text())["files"]
    assert set(manifest) == set(files)
    assert manifest["204000_nets_ema.ckpt"]["source"] == f"https://drive.google.com/uc?export=download&id={AEG_ID}"
    assert manifest["204000_nets_ema.ckpt"]["drive_folder"] == AEG_FOLDER
    assert manifest["generic_model.pkl"]["source"] == "https://download.is.tue.mpg.de/download.php?domain=flame&sfile=FLAME2020.zip"
    assert manifest["POE/FF/Backbone_IR_50_Epoch_80.pth"]["source"] == f"https://drive.google.com/uc?export=download&id={PAE_ID}"
    assert manifest["face_alignment/s3fd-619a316812.pth"]["source"] == f"{server.url}/files/s3fd-619a316812.pth"
    for name, record in manifest.items():
        assert record["bytes"] == files[name].stat().st_size and record["sha256"] == _sha256(files[name])
    assert FLAME_LOGIN[1] not in (target / "downloads.json").read_text()

    # again, with every host unreachable: everything is already there and checked, nothing is fetched
    for name in URL_ENVS:
        monkeypatch.setenv(name, f"http://127.0.0.1:{refused_port}/")
    monkeypatch.delenv(flame.PASSWORD_ENV)
    assert cli(["download", "--to", str(target)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["downloaded"] == [] and again["already_there"] == sorted(str(target / k) for k in files)


def test_a_file_put_there_by_hand_is_checked_and_kept(official_files, tmp_path, monkeypatch, capsys, refused_port):
    root, files = official_files
    monkeypatch.setitem(sources.EXPECTED_SHA256, "landmark_embedding.npy", _sha256(files["landmark_embedding.npy"]))
    monkeypatch.setitem(sources.EXPECTED_SHA256, "head_template.obj", _sha256(files["head_template.obj"]))
    for name in ("deca_model.tar", "landmark_embedding.npy", "head_template.obj"):
        os.link(files[name], tmp_path / name)
    monkeypatch.setenv("PASL_DRIVE_BASE_URL", f"http://127.0.0.1:{refused_port}")
    assert cli(["download", "deca", "--to", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["downloaded"] == [] and len(result["already_there"]) == 3
    assert json.loads((tmp_path / "downloads.json").read_text())["files"]["deca_model.tar"]["source"] == "found in place"


def test_the_deca_download_may_be_the_bare_checkpoint(official_files, tmp_path, monkeypatch):
    """A torch file is a zip too: without a ``deca_model.tar`` member, the download itself is checked as the file."""
    root, files = official_files
    monkeypatch.setattr(pasl.download.fetch, "plan", lambda kind: sources.plan(kind)[:1])
    with _serve(monkeypatch, FakeServices(drive_files={DECA_ID: ("deca_model.tar", files["deca_model.tar"])}, large={DECA_ID})):
        assert download("deca", tmp_path).downloaded == [tmp_path / "deca_model.tar"]
    assert _sha256(tmp_path / "deca_model.tar") == _sha256(files["deca_model.tar"])
    assert _no_files_left(tmp_path) == ["deca_model.tar", "downloads.json"]


def test_the_default_folder_is_the_one_discovery_searches_first():
    from pasl.catalog import model_folder

    assert pasl.download.fetch.model_folder is model_folder
