#!/usr/bin/perl
# An RFC 1413 lookup made with Net::Ident (Debian libnet-ident-perl), used by
# test/interop/net-ident.test.ts. Net::Ident always asks port 113 of the peer,
# so the test runs this inside a network namespace of its own.
#
#   net-ident.pl <host> <listenPort>
#
# Makes a real TCP connection to a listener on <host>:<listenPort>, then asks
# the peer's ident server who owns it with Net::Ident::lookup on the accepted
# socket. Prints tab-separated lines for the test to parse:
#   CONN   <serverPort> <clientPort>    the ports Net::Ident should ask about
#   USERID <opsys> <userid>
#   ERROR  <error token or Net::Ident's failure text>
# and exits 0 when the lookup got an answer, 1 otherwise.
use strict;
use warnings;
use IO::Socket::INET;
use Net::Ident qw(lookup);

die "usage: net-ident.pl <host> <listenPort>\n" unless @ARGV == 2;
my ( $host, $listenPort ) = @ARGV;
$| = 1;

my $listener = IO::Socket::INET->new(
    LocalAddr => $host,
    LocalPort => $listenPort,
    Listen    => 1,
    ReuseAddr => 1,
) or die "cannot listen on $host:$listenPort: $@\n";
my $client = IO::Socket::INET->new( PeerAddr => $host, PeerPort => $listener->sockport )
  or die "cannot connect to $host:$listenPort: $@\n";
my $accepted = $listener->accept() or die "accept failed: $!\n";

# We accepted the connection, so we ask the peer's ident server: the peer's
# port is the server port, ours the client port.
print join( "\t", 'CONN', $accepted->peerport, $accepted->sockport ), "\n";

my ( $userid, $opsys, $error ) = lookup( $accepted, 5 );
if ( defined $userid ) {
    print join( "\t", 'USERID', $opsys, $userid ), "\n";
    exit 0;
}
$error = 'no answer' unless defined $error;
chomp $error;
print join( "\t", 'ERROR', $error ), "\n";
exit( defined $opsys && $opsys eq 'ERROR' ? 0 : 1 );
