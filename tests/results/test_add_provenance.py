from bnlab.results import Store


def test_add_provenance_merges_into_what_the_sweep_recorded(tmp_path):
    with Store(tmp_path) as store:
        run = store.register_run("k1", "r", {"lr": 0.1}, 0)
        store.start_run(run, resumed_from=None, provenance={"git_sha": "abc", "threads": 9})
        store.add_provenance(run, device="cpu", threads=1)
        prov = store.runs().iloc[0]["provenance"]
    assert prov == {"git_sha": "abc", "device": "cpu", "threads": 1}
