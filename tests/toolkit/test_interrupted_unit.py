"""What an interrupted deploy left is judged from the host's releases alone: whether `current`
was never verified, and which release goes back (the one the dead deploy noted, if good)."""

from toolkit import interrupted
from toolkit.releases import HostReleases, ReleaseInfo


def state_of(*infos, current=""):
    return HostReleases(provisioned=True, current=current,
                        releases=[ReleaseInfo(name, verdict) for name, verdict in infos])


def test_only_a_current_without_good_marker_is_unverified():
    assert not interrupted.unverified_current(state_of(("r1", "good"), current="r1"))
    assert interrupted.unverified_current(state_of(("r1", "good"), ("r2", ""), current="r2"))
    assert interrupted.unverified_current(state_of(("r1", "good"), ("r2", "failed"), current="r2"))
    assert interrupted.unverified_current(state_of(("r1", "good"), current="gone"))  # pruned by hand
    assert not interrupted.unverified_current(state_of())  # nothing deployed yet


def test_the_release_the_dead_deploy_noted_goes_back_when_it_is_good():
    state = state_of(("r1", "good"), ("r2", "good"), ("r3", ""), current="r3")
    assert interrupted.restore_target(state, "r1").name == "r1"  # it was live (a rollback earlier)
    assert interrupted.restore_target(state, "").name == "r2"  # not noted: the newest good
    assert interrupted.restore_target(state, "r9").name == "r2"  # noted, since pruned
    failed = state_of(("r1", "good"), ("r2", "failed"), ("r3", ""), current="r3")
    assert interrupted.restore_target(failed, "r2").name == "r1"  # never a failed release


def test_with_no_good_release_there_is_nothing_to_put_back():
    assert interrupted.restore_target(state_of(("r1", "failed"), ("r2", ""), current="r2"), "r1") is None


def test_the_stop_script_stops_the_socket_so_nginx_is_refused():
    class Cfg:
        class layout:
            socket_unit_name, unit_name = "shop.socket", "shop.service"

    assert interrupted.stop_script(Cfg) == "systemctl stop shop.socket shop.service"
