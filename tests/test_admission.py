"""daemon.network.admission: who may open an association."""

from daemon.network.admission import Admission
from daemon.settings import Peer


def test_no_configuration_admits_loopback_only() -> None:
    a = Admission(())
    assert a.refusal("ANY", "127.0.0.1") is None
    assert a.refusal("ANY", "::1") is None
    assert "not loopback" in a.refusal("ANY", "10.1.2.3")


def test_allow_list_by_title_and_address() -> None:
    a = Admission((Peer(ae_title="ORTHANC", host="10.0.0.5"), Peer(ae_title="WS1")))
    assert a.refusal("ORTHANC", "10.0.0.5") is None
    assert a.refusal("ORTHANC", "::ffff:10.0.0.5") is None  # IPv4-mapped peer address
    assert "only from 10.0.0.5, not 10.0.0.6" in a.refusal("ORTHANC", "10.0.0.6")
    assert a.refusal("WS1", "192.168.1.9") is None  # no host = any address
    assert "'EVIL' is not in scp.allowed_peers" in a.refusal("EVIL", "10.0.0.5")
    # configured peers replace the loopback default
    assert a.refusal("EVIL", "127.0.0.1") is not None
