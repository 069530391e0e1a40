#!/usr/bin/env python3
"""A model of kseg's per-iteration communication under MPI and the parallel efficiency it projects
for many nodes (issue 6). It counts what the engine sends per Lloyd iteration (engine/blocks.c,
kseg_reduce_vector): each rank merges its threads' canonical dyadic-tree nodes (k*d + k + 4 doubles
each, plus a 16-byte header) into the canonical decomposition of its block range; the ranks then
reduce these node lists to rank 0 along a binomial tree in rank order (log2(R) rounds, one message
per pair and round, each list merged as it arrives), rank 0 combines them, and two broadcasts (a
status, then the k*d + k + 4 sums) bring the result to every rank; one 8-byte maximum per
iteration agrees on the checkpoint stop flag. Compute time per node comes from
a measured single-node speed; network and memory figures are stated parameters. For comparison it
also projects the design the issue sketches (one allreduce of k*d doubles and k counts), which
would need order-independent (exact) sums to stay bitwise reproducible."""

import argparse
import math

BLOCK_ROWS = 8192


def dyadic_pieces(begin, end):
    """Number of nodes a worker's stack holds after reducing blocks [begin, end): the aligned
    power-of-two intervals of the greedy canonical decomposition (kernels/reduce.h)."""
    count = 0
    position = begin
    while position < end:
        size = 1
        while position % (size * 2) == 0 and position + size * 2 <= end:
            size *= 2
        position += size
        count += 1
    return count


def rank_blocks(n, ranks, rank):
    blocks = math.ceil(n / BLOCK_ROWS)
    return blocks * rank // ranks, blocks * (rank + 1) // ranks


def tree_rounds(n, ranks):
    """The largest message (in nodes) of each round of the binomial tree: in round s, rank r + s
    sends the merged list of ranks r + s .. r + 2s - 1, the canonical pieces of their blocks."""
    rounds = []
    step = 1
    while step < ranks:
        largest = 0
        for receiver in range(0, ranks, 2 * step):
            sender = receiver + step
            if sender >= ranks:
                continue
            first, _ = rank_blocks(n, ranks, sender)
            _, last = rank_blocks(n, ranks, min(ranks, sender + step) - 1)
            largest = max(largest, dyadic_pieces(first, last))
        rounds.append(largest)
        step *= 2
    return rounds


def project(args, nodes, node_speedup):
    width = args.k * args.d + args.k + 4
    node_bytes = 16 + 8 * width
    seconds_per_row = args.seconds_per_iteration / args.measured_rows / node_speedup
    compute = args.n / nodes * seconds_per_row
    latency = args.latency_us * 1e-6
    bandwidth = args.bandwidth_gbs * 1e9
    memory = args.memory_gbs * 1e9
    rounds = tree_rounds(int(args.n), nodes)
    # Each round: one message, then the receiver adds the merged payloads (memory-bound).
    tree = sum(latency + m * node_bytes / bandwidth + m * node_bytes / memory for m in rounds)
    broadcasts = math.ceil(math.log2(nodes)) * (2 * latency + 8 * width / bandwidth)
    # The stop-request flag (checkpointing): one 8-byte maximum per iteration.
    stop_flag = 2 * math.ceil(math.log2(nodes)) * latency
    current = tree + broadcasts + stop_flag
    alternative = 2 * math.log2(nodes) * (latency + 8 * (args.k * args.d + args.k) / bandwidth)
    return {
        "nodes": nodes, "rows_per_node": args.n / nodes, "compute_s": compute,
        "largest_message": max(rounds) if rounds else 0, "rounds": len(rounds),
        "comm_s": current, "efficiency": compute / (compute + current),
        "alt_comm_s": alternative, "alt_efficiency": compute / (compute + alternative),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=float, default=1e10, help="rows (default 1e10)")
    parser.add_argument("--d", type=int, default=16, help="features (default 16)")
    parser.add_argument("--k", type=int, default=64, help="clusters (default 64)")
    parser.add_argument("--nodes", default="64,256,1024", help="node counts (default 64,256,1024)")
    parser.add_argument("--threads", type=int, default=2,
                        help="OpenMP threads per rank, one rank per node (default 2, as measured)")
    parser.add_argument("--seconds-per-iteration", type=float, default=0.0121,
                        help="measured single-node Lloyd seconds per iteration (default 0.0121: "
                             "bench/RESULTS.md, n=1e6 d=16 k=64, 2 cores)")
    parser.add_argument("--measured-rows", type=float, default=1e6,
                        help="rows of that measurement (default 1e6)")
    parser.add_argument("--node-speedup", default="1,32",
                        help="node speed relative to the measured 2-core machine (default 1 and "
                             "32, i.e. a 64-core node scaling linearly per core)")
    parser.add_argument("--latency-us", type=float, default=2.0,
                        help="network latency per message, microseconds (default 2: InfiniBand HDR)")
    parser.add_argument("--bandwidth-gbs", type=float, default=12.5,
                        help="network bandwidth per node, GB/s (default 12.5: 100 Gb/s)")
    parser.add_argument("--memory-gbs", type=float, default=49.0,
                        help="memory bandwidth for combining gathered nodes, GB/s (default 49: "
                             "the floor measured in bench/RESULTS.md)")
    args = parser.parse_args()
    print(f"Model: n = {args.n:.0e}, d = {args.d}, k = {args.k}; one rank per node; network "
          f"{args.latency_us} us latency, {args.bandwidth_gbs} GB/s; single-node speed "
          f"{args.seconds_per_iteration} s per iteration for {args.measured_rows:.0e} rows.\n")
    for speedup in (float(s) for s in args.node_speedup.split(",")):
        threads = args.threads if speedup == 1 else max(args.threads, int(2 * speedup))
        run_args = argparse.Namespace(**{**vars(args), "threads": threads})
        print(f"Node = {speedup:g}x the measured machine ({threads} threads per rank):\n")
        print("| nodes | rows/node | compute s/iter | tree rounds | largest message (nodes) "
              "| comm s/iter | efficiency | allreduce design: comm s/iter | efficiency |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for nodes in (int(x) for x in args.nodes.split(",")):
            p = project(run_args, nodes, speedup)
            print(f"| {nodes} | {p['rows_per_node']:.2e} | {p['compute_s']:.4f} | {p['rounds']} "
                  f"| {p['largest_message']} | {p['comm_s']:.6f} | {100 * p['efficiency']:.2f} % "
                  f"| {p['alt_comm_s']:.6f} | {100 * p['alt_efficiency']:.2f} % |")
        print()


if __name__ == "__main__":
    main()
